"""What a failed response's headers say about retrying it: whether, and after how long.

- ``x-should-retry: true|false`` (sent by OpenAI and Anthropic, honoured by their SDKs)
  overrides whether the error is retried; a non-retried error still falls back.
- ``retry-after-ms``, then ``Retry-After`` (seconds or an HTTP date) say how long to wait.
- Without those, a 429's rate-limit reset headers are the hint: OpenAI's (and Groq's)
  ``x-ratelimit-reset-requests`` / ``-tokens`` (durations like ``1s``, ``6m0s``, ``20ms``)
  and Anthropic's ``anthropic-ratelimit-*-reset`` (RFC 3339 times). A limit whose
  ``remaining`` is ``0`` is the one that was hit; without that, the soonest reset is used.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from reliable_llm._errors import ProviderError, RateLimitError

__all__ = ["apply_retry_hints", "parse_retry_after", "rate_limit_reset"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
#: (remaining header, reset header, reset format) of each known rate limit.
_LIMITS = (
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "duration"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", "duration"),
    *(
        (f"anthropic-ratelimit-{kind}-remaining", f"anthropic-ratelimit-{kind}-reset", "time")
        for kind in ("requests", "tokens", "input-tokens", "output-tokens")
    ),
)


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    text = headers.get("retry-after")
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        import email.utils  # deferred: it costs ~15 ms of `import reliable_llm`, for a rare case

        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(seconds, 0.0)
    return seconds if seconds >= 0 else None


def _duration(text: str) -> float | None:
    """Seconds of a Go-style duration (``1h2m3.5s``, ``20ms``); None if it is not one."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _until(text: str, now: float) -> float | None:
    """Seconds from ``now`` until an RFC 3339 time; None if it is not one."""
    import datetime  # deferred like email.utils: only rate-limited calls need it

    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(when.timestamp() - now, 0.0)


def rate_limit_reset(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds until the exhausted rate limit resets, from the reset headers; None if unknown."""
    if not headers:
        return None
    clock = time.time() if now is None else now
    exhausted: list[float] = []
    resets: list[float] = []
    for remaining_name, reset_name, kind in _LIMITS:
        text = headers.get(reset_name)
        if not text:
            continue
        seconds = _duration(text) if kind == "duration" else _until(text, clock)
        if seconds is None:
            continue
        resets.append(seconds)
        if (headers.get(remaining_name) or "").strip() == "0":
            exhausted.append(seconds)
    if exhausted:
        return max(exhausted)
    return min(resets) if resets else None


def apply_retry_hints(
    error: ProviderError, headers: Mapping[str, str] | None, now: float | None = None
) -> ProviderError:
    """Set ``error``'s retry decision and wait from the response headers; return it.

    ``x-should-retry`` overrides ``error.retryable`` on this instance only; a 429 without
    ``Retry-After`` takes its wait from the rate-limit reset headers.
    """
    if not headers:
        return error
    flag = (headers.get("x-should-retry") or "").strip().lower()
    if flag == "true":
        error.retryable = True
    elif flag == "false":
        error.retryable = False
    if error.retry_after is None and isinstance(error, RateLimitError):
        error.retry_after = rate_limit_reset(headers, now)
    return error
