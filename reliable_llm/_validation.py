"""Response validators: accepting them (per model, per request) and running them on an answer.

A validator is a sync callable ``validator(response) -> None`` that raises
`InvalidResponseError` to reject a complete answer; the ready-made ones are in
``reliable_llm.validators``. A rejected answer moves the request to the next model like a
failed call does (see `ModelAttempts.succeeded`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from types import FunctionType, MethodType
from typing import Any

from reliable_llm._callable import is_async_callable
from reliable_llm._errors import ConfigurationError, InvalidResponseError
from reliable_llm._types import ChatResponse

__all__ = ["NO_VALIDATORS", "Validator", "as_validators", "run_validators"]

Validator = Callable[[ChatResponse], Any]
"""``validator(response)``: returns (any value, ignored) to accept the answer, raises
`InvalidResponseError` to reject it."""

NO_VALIDATORS: tuple[Validator, ...] = ()
_BUILDERS = f"{__package__}.validators"  # the module of the ready-made validators' builders


def _name(fn: object) -> str:
    """A function's qualified name, or the repr of a validator object."""
    return str(getattr(fn, "__qualname__", None) or repr(fn))


# Whether calling an instance of a type returns an awaitable depends only on the type: the
# answer is remembered per type, so a request's validators are checked in well under 1 µs.
_ASYNC_BY_TYPE: dict[type, bool] = {}
_PER_OBJECT = (MethodType, functools.partial)  # what they wrap decides: never remembered


def _is_async(item: object) -> bool:
    kind = type(item)
    if kind is FunctionType:
        return is_async_callable(item)
    known = _ASYNC_BY_TYPE.get(kind)
    if known is None:
        known = is_async_callable(item)
        if not issubclass(kind, _PER_OBJECT):
            _ASYNC_BY_TYPE[kind] = known
    return known


def as_validators(parameter: str, value: object) -> tuple[Validator, ...]:
    """``value`` (None, one validator, or a sequence of them) as a tuple of validators.

    Raises:
        ConfigurationError: An item is not a sync callable (async validators cannot run
            where answers are checked), naming ``parameter``.
    """
    if value is None:
        return NO_VALIDATORS
    if callable(value):
        items: tuple[object, ...] = (value,)
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = tuple(value)
    else:
        raise ConfigurationError(
            f"{parameter} must be a callable validator(response) or a list of them (see "
            f"reliable_llm.validators), got {type(value).__name__}"
        )
    for item in items:
        if not callable(item) or isinstance(item, type):
            raise ConfigurationError(
                f"{parameter} must hold validator instances such as "
                f"reliable_llm.validators.not_truncated(), got {item!r}"
            )
        if isinstance(item, FunctionType) and item.__module__ == _BUILDERS:
            raise ConfigurationError(
                f"{parameter}: {item.__name__} builds a validator; call it: {item.__name__}()"
            )
        if _is_async(item):
            raise ConfigurationError(
                f"{parameter}: {item!r} is an async function; validators are called "
                "synchronously on the answer, so use a plain def"
            )
    return items  # type: ignore[return-value]


def run_validators(
    checks: Sequence[Validator], response: ChatResponse
) -> InvalidResponseError | None:
    """The first rejection of ``response`` by ``checks`` (in order), or None when all accept.

    Raises:
        ConfigurationError: A validator raised something other than `InvalidResponseError`
            (a bug in the validator, not a fault of the model: no fallback, no breaker count).
    """
    for check in checks:
        try:
            check(response)
        except InvalidResponseError as rejection:
            return rejection
        except Exception as bug:
            raise ConfigurationError(
                f"validator {_name(check)} raised {type(bug).__name__}: {bug}; a validator "
                "must return to accept an answer or raise reliable_llm.InvalidResponseError "
                "to reject it"
            ) from bug
    return None
