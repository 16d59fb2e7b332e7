"""Response cache: canonical request keys, a backend interface and the in-memory LRU backend.

Values are JSON-compatible dicts (`ChatResponse.to_dict`). A persistent or shared backend
stores them as JSON text, never pickle, so write access to the store is never code execution.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from reliable_llm._clock import Clock
from reliable_llm._content import Part
from reliable_llm._errors import CacheKeyError
from reliable_llm._policies import CachePolicy
from reliable_llm._request import NEVER_KEYED, request_params
from reliable_llm._types import ChatRequest

__all__ = ["CacheBackend", "InMemoryCache", "cache_key", "cache_size", "prompt_cache_key"]

CacheValue = Mapping[str, Any]

_KEY_VERSION = 2
_encode_str = json.encoder.encode_basestring  # what the encoder below uses for str
_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


@runtime_checkable
class CacheBackend(Protocol):
    """Where cached responses live. Implementations must be thread-safe and fast.

    ``get`` returns the stored value or None when absent or expired; ``set`` stores a
    JSON-compatible dict for ``ttl`` seconds (None: no expiry). A backend may also offer
    ``delete(key)``: the manager calls it to evict an entry it cannot read. Errors a backend
    raises never fail a request: a failed ``get`` is a miss, a failed ``set`` loses one entry,
    and both are reported as `reliable_llm.events.CacheError` events and warnings.
    """

    def get(self, key: str) -> CacheValue | None:
        """Return the value stored under ``key``, or None."""
        ...

    def set(self, key: str, value: CacheValue, ttl: float | None) -> None:
        """Store ``value`` under ``key``."""
        ...

    def clear(self) -> None:
        """Remove every entry."""
        ...

    def __len__(self) -> int:
        """Number of entries held."""
        ...


class InMemoryCache:
    """Thread- and task-safe LRU cache bounded by entries, bytes and per-entry TTL."""

    __slots__ = ("_bytes", "_clock", "_entries", "_lock", "max_bytes", "max_size", "ttl")

    def __init__(self, policy: CachePolicy, clock: Clock) -> None:
        self.max_size = policy.max_size
        self.max_bytes = policy.max_bytes
        self.ttl = policy.ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._bytes = 0
        self._entries: OrderedDict[str, tuple[float | None, CacheValue, int]] = OrderedDict()

    def get(self, key: str) -> CacheValue | None:
        """Return the live value under ``key`` (refreshing its recency), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, value, size = entry
            if expires_at is not None and self._clock.monotonic() >= expires_at:
                del self._entries[key]
                self._bytes -= size
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: CacheValue, ttl: float | None) -> None:
        """Store ``value``; evict the least recently used entries beyond the bounds."""
        expires_at = None if ttl is None else self._clock.monotonic() + ttl
        # Sized only when bounded by bytes: measuring costs a JSON encoding per entry.
        size = 0 if self.max_bytes is None else len(_dumps(value).encode("utf-8", "surrogatepass"))
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            if self.max_bytes is not None and size > self.max_bytes:
                return
            self._entries[key] = (expires_at, value, size)
            self._bytes += size
            entries = self._entries
            while len(entries) > self.max_size or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                self._bytes -= entries.popitem(last=False)[1][2]

    def delete(self, key: str) -> None:
        """Remove the entry under ``key``, if any."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry[2]

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def size_bytes(self) -> int:
        """Bytes of JSON held (0 unless ``max_bytes`` is set)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"InMemoryCache(size={len(self)}, max_size={self.max_size}, "
            f"max_bytes={self.max_bytes}, ttl={self.ttl})"
        )


def _params(request: ChatRequest) -> dict[str, Any]:
    """The request's parameters as keyed: the one projection (`request_params`), made
    canonical (numbers as floats, tools as lists) and without the never-keyed names."""
    params = request_params(request)
    if not params:
        return params
    for name in NEVER_KEYED.intersection(params):
        del params[name]
    for name in ("temperature", "top_p"):
        if name in params:
            params[name] = float(params[name])
    if "tools" in params:
        params["tools"] = [[t.name, t.description, t.parameters] for t in request.tools]
    return params


def _parts_key(parts: tuple[Part, ...]) -> list[Any]:
    """Content parts as key items: each binary payload as its SHA-256 (computed once per
    part), never the payload itself, so a 1 MB image costs one hash, not a JSON dump."""
    return [part.key() for part in parts]


def cache_key(model: str, request: ChatRequest) -> str:
    """SHA-256 of the canonical JSON of the requested model, messages and parameters.

    Raises:
        CacheKeyError: A parameter cannot be represented as JSON.
    """
    # `type(...) is str`, not isinstance: no call on the text-only path.
    messages = [
        [
            m.role,
            m.content if type(m.content) is str else _parts_key(m.content),  # type: ignore[arg-type]
            [[c.id, c.name, c.arguments] for c in m.tool_calls],
            m.tool_call_id,
            m.name,
        ]
        if m.tool_calls or m.tool_call_id or m.name
        else [m.role, m.content if type(m.content) is str else _parts_key(m.content)]  # type: ignore[arg-type]
        for m in request.messages
    ]
    payload = [_KEY_VERSION, model, messages, _params(request)]
    try:
        text = _dumps(payload)
    except (TypeError, ValueError) as exc:
        raise CacheKeyError(
            f"request parameters cannot form a cache key ({exc}); pass JSON-compatible values "
            "(str, int, float, bool, None, lists and dicts with str keys) or use_cache=False"
        ) from exc
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def prompt_cache_key(model: str, prompt: str) -> str:
    """`cache_key` of a single user prompt with no parameters, built without the encoder.

    ``generate(prompt)`` is the hottest path; this yields exactly the same text as the general
    canonical encoding (a property test pins the equality).
    """
    text = f'[{_KEY_VERSION},{_encode_str(model)},[["user",{_encode_str(prompt)}]],{{}}]'
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def cache_size(cache: CacheBackend) -> int | None:
    """The backend's entry count, or None when it cannot say (metrics must not fail)."""
    try:
        size = len(cache)
    except Exception:
        return None
    return size if size >= 0 else None
