"""Holding API keys so they never leak into reprs, logs, errors, metrics or cache keys."""

from __future__ import annotations

import hmac
import os

__all__ = ["SecretStr", "resolve_secret"]

_MASK = "**********"


class SecretStr:
    """A string that hides its value everywhere except `get_secret_value`.

    ``repr``, ``str`` and formatting show a mask; pickling is refused so a key cannot be
    written to a cache or a queue by accident.

    Example:
        >>> key = SecretStr("sk-123")
        >>> key, f"{key}"
        (SecretStr('**********'), '**********')
        >>> key.get_secret_value()
        'sk-123'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"SecretStr holds a str, got {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself: hand it to the SDK, never to a log."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretStr({_MASK!r})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return format(_MASK, format_spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretStr):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((SecretStr, self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SecretStr cannot be pickled: it would write the secret out")


def resolve_secret(value: str | SecretStr | None, env_var: str | None) -> SecretStr | None:
    """The secret from ``value``, else from the environment variable ``env_var``, else None.

    Empty strings count as missing.
    """
    if isinstance(value, SecretStr):
        return value if value else None
    if value:
        return SecretStr(value)
    if env_var:
        from_env = os.environ.get(env_var, "")
        if from_env:
            return SecretStr(from_env)
    return None
