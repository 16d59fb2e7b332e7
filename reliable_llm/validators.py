"""Ready-made response validators: fall back when an answer is empty, truncated, a refusal, or
does not match a JSON Schema.

Pass them per model (``register_model(..., validators=[...])``) or per request
(``chat(..., validators=[...])``); a model's validators run first, then the request's. A
rejected answer is never returned nor cached: the next model of the route is tried, as after a
failed call, and the reason shows in `AllModelsFailedError`, the rejected attempt's record
(``response.attempts[i].error.reason``) and ``get_metrics()["invalid_responses"]``. A rejection
is not held against the model's breaker unless the validator was built with
``counts_against_breaker=True``.

Example:
    >>> from reliable_llm import LLMManager, ChatResponse
    >>> from reliable_llm.validators import not_truncated
    >>> manager = LLMManager()
    >>> manager.register_model("short", lambda p, **kw: ChatResponse("Par", finish_reason="length"))
    >>> manager.register_model("full", lambda p, **kw: "Paris")
    >>> manager.set_fallback_chain(["full"])
    >>> manager.chat("Capital of France?", validators=[not_truncated()]).text
    'Paris'

Your own validator is any sync callable ``validator(response)`` that raises
`InvalidResponseError` (with a ``reason``) to reject the answer. Anything else it raises is
treated as a bug in the validator: a `ConfigurationError`, raised to the caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reliable_llm._errors import ConfigurationError, EmptyResponseError, InvalidResponseError
from reliable_llm._types import ChatResponse
from reliable_llm._validation import Validator

__all__ = [
    "Validator",
    "matches_schema",
    "not_empty",
    "not_refused",
    "not_truncated",
]


class _Check:
    """A named, breaker-aware validator: subclasses implement `problem`."""

    __slots__ = ("counts_against_breaker",)
    reason = "invalid"
    name = "validator"

    def __init__(self, counts_against_breaker: bool) -> None:
        if not isinstance(counts_against_breaker, bool):
            raise ConfigurationError(
                f"counts_against_breaker must be True or False, got {counts_against_breaker!r}"
            )
        self.counts_against_breaker = counts_against_breaker

    def problem(self, response: ChatResponse) -> str | None:
        """What is wrong with ``response``, or None when it is acceptable."""
        raise NotImplementedError

    def __call__(self, response: ChatResponse) -> None:
        problem = self.problem(response)
        if problem is not None:
            raise self.error(problem, response)

    def error(self, problem: str, response: ChatResponse) -> InvalidResponseError:
        return InvalidResponseError(
            problem,
            reason=self.reason,
            counts_against_breaker=self.counts_against_breaker,
            provider=response.provider or None,
        )

    def __repr__(self) -> str:
        counts = "counts_against_breaker=True" if self.counts_against_breaker else ""
        return f"{self.name}({counts})"


class _NotEmpty(_Check):
    __slots__ = ()
    reason = "empty"
    name = "not_empty"

    def problem(self, response: ChatResponse) -> str | None:
        if response.tool_calls or response.text.strip():
            return None
        return f"empty answer: no text and no tool calls (finish_reason {response.finish_reason})"

    def error(self, problem: str, response: ChatResponse) -> InvalidResponseError:
        return EmptyResponseError(
            problem,
            counts_against_breaker=self.counts_against_breaker,
            provider=response.provider or None,
        )


class _NotTruncated(_Check):
    __slots__ = ()
    reason = "truncated"
    name = "not_truncated"

    def problem(self, response: ChatResponse) -> str | None:
        if response.finish_reason != "length":
            return None
        return "truncated answer: the model hit its output token limit (finish_reason length)"


class _NotRefused(_Check):
    __slots__ = ()
    reason = "refusal"
    name = "not_refused"

    def problem(self, response: ChatResponse) -> str | None:
        if response.finish_reason != "refusal":
            return None
        return "refusal: the model declined to answer (finish_reason refusal)"


def not_empty(*, counts_against_breaker: bool = False) -> Validator:
    """Reject an answer with neither text (whitespace aside) nor tool calls.

    Raises (when called on such an answer):
        EmptyResponseError: reason ``"empty"``.
    """
    return _NotEmpty(counts_against_breaker)


def not_truncated(*, counts_against_breaker: bool = False) -> Validator:
    """Reject an answer cut off at its output token limit (finish reason ``"length"``, which
    is also how Anthropic's ``max_tokens`` stop reason arrives).

    Raises (when called on such an answer):
        InvalidResponseError: reason ``"truncated"``.
    """
    return _NotTruncated(counts_against_breaker)


def not_refused(*, counts_against_breaker: bool = False) -> Validator:
    """Reject a refusal: finish reason ``"refusal"`` (OpenAI's ``message.refusal`` field and
    Anthropic's ``stop_reason: "refusal"`` both arrive as it).

    Raises (when called on such an answer):
        InvalidResponseError: reason ``"refusal"``.
    """
    return _NotRefused(counts_against_breaker)


class _MatchesSchema(_Check):
    __slots__ = ("_validator", "schema")
    reason = "schema"

    def __init__(self, schema: Mapping[str, Any], counts_against_breaker: bool) -> None:
        super().__init__(counts_against_breaker)
        if not isinstance(schema, Mapping):
            raise ConfigurationError(
                f"matches_schema needs a JSON Schema dict such as {{'type': 'object'}}, "
                f"got {type(schema).__name__}"
            )
        try:
            import jsonschema  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigurationError(
                "matches_schema needs the jsonschema package: pip install "
                "'reliable-llm[jsonschema]'"
            ) from None
        schema = dict(schema)
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            path = exc.json_path if hasattr(exc, "json_path") else "$"
            raise ConfigurationError(
                f"matches_schema: the schema is not a valid JSON Schema ({exc.message} at "
                f"{path}); fix the schema"
            ) from None
        self.schema = schema
        self._validator = cls(schema)

    def problem(self, response: ChatResponse) -> str | None:
        # The message names where the answer fails, never the answer's content.
        try:
            value = json.loads(response.text)
        except ValueError as exc:
            where = getattr(exc, "pos", None)
            at = f" (at character {where})" if where is not None else ""
            return f"structured output is not JSON{at}"
        error = next(iter(self._validator.iter_errors(value)), None)
        if error is None:
            return None
        return (
            f"structured output does not match its schema: {error.validator!r} failed at "
            f"{error.json_path}"
        )

    def __repr__(self) -> str:
        counts = ", counts_against_breaker=True" if self.counts_against_breaker else ""
        return f"matches_schema(<schema {self.schema.get('title') or 'untitled'}>{counts})"


def matches_schema(schema: Mapping[str, Any], *, counts_against_breaker: bool = False) -> Validator:
    """Reject an answer whose text is not JSON matching ``schema`` (a JSON Schema dict, any
    draft `jsonschema <https://python-jsonschema.readthedocs.io>`_ knows; the draft is read
    from ``$schema``, 2020-12 by default).

    Use it with structured output (``response_format``): a model that ignores the format, or
    a field that is missing or of the wrong type, moves the request to the next model.
    Needs ``pip install 'reliable-llm[jsonschema]'``.

    Raises:
        ConfigurationError: ``schema`` is not a valid JSON Schema, or jsonschema is not
            installed (raised here, not per answer).

    Raises (when called on such an answer):
        InvalidResponseError: reason ``"schema"``; the message names the failed keyword and
            the JSON path, never the answer's content.
    """
    return _MatchesSchema(schema, counts_against_breaker)
