"""The response cache in Redis (JSON text, never pickle), with this process's cache as fallback.

Entries live under ``<namespace>:cache:<key>`` with Redis expiry (``PX``). Every entry is also
written to an in-process `InMemoryCache`, which answers while Redis is unavailable (see
`Link`): an outage costs cache hits from other processes, never a request. The async methods
use redis-py's asyncio client, so the async drivers never block their event loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reliable_llm._cache import InMemoryCache
from reliable_llm.backends._redis_link import Link, kept

__all__ = ["COUNT_FOR", "RedisCache"]

COUNT_FOR = 5.0
"""Seconds `RedisCache.__len__` reuses its last count."""

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _decode(raw: bytes | None) -> Mapping[str, Any] | None:
    """The entry's JSON object; ValueError (naming no content) when it is not one."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError("unreadable cache entry (not JSON text); it was evicted") from None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"unreadable cache entry (a JSON {type(value).__name__}, not an object); it was evicted"
        )
    return value


class RedisCache:
    """A `reliable_llm.CacheBackend` shared through Redis (built by `RedisState`)."""

    __slots__ = ("_counted", "_link", "_local", "_prefix")

    def __init__(self, link: Link, local: InMemoryCache) -> None:
        self._link = link
        self._local = local
        self._prefix = f"{link.namespace}:cache:"
        self._counted: tuple[float, int] | None = None  # (when, count) of the last SCAN

    def get(self, key: str) -> Mapping[str, Any] | None:
        """The value under ``key`` from Redis (from this process's cache during an outage)."""
        link = self._link
        if link.usable():
            try:
                raw = link.client.get(self._prefix + key)
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()
                try:
                    return _decode(raw)
                except ValueError:
                    self.delete(key)  # reported once by the caller, then gone
                    raise
        return self._local.get(key)

    def set(self, key: str, value: Mapping[str, Any], ttl: float | None) -> None:
        """Store ``value`` as JSON for ``ttl`` seconds (None: no expiry), here and in Redis."""
        self._local.set(key, value, ttl)
        text = _dumps(value)
        link = self._link
        if link.usable():
            try:
                link.client.set(self._prefix + key, text, px=_ms(ttl))
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()

    def delete(self, key: str) -> None:
        """Remove the entry under ``key``, here and in Redis."""
        self._local.delete(key)
        link = self._link
        if link.usable():
            try:
                link.client.delete(self._prefix + key)
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()

    async def aget(self, key: str) -> Mapping[str, Any] | None:
        """Async twin of `get` (redis-py's asyncio client)."""
        link = self._link
        if link.usable():
            try:
                raw = await kept(link.aclient().get(self._prefix + key))
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()
                try:
                    return _decode(raw)
                except ValueError:
                    await self.adelete(key)
                    raise
        return self._local.get(key)

    async def aset(self, key: str, value: Mapping[str, Any], ttl: float | None) -> None:
        """Async twin of `set`."""
        self._local.set(key, value, ttl)
        text = _dumps(value)
        link = self._link
        if link.usable():
            try:
                await kept(link.aclient().set(self._prefix + key, text, px=_ms(ttl)))
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()

    async def adelete(self, key: str) -> None:
        """Async twin of `delete`."""
        self._local.delete(key)
        link = self._link
        if link.usable():
            try:
                await kept(link.aclient().delete(self._prefix + key))
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()

    # -- for the round trips of `SharedFlight.begin` and `SharedFlight.finish` ------------------

    def name(self, key: str) -> str:
        """The Redis key of the entry under ``key``."""
        return self._prefix + key

    def decoded(self, key: str, raw: bytes) -> Mapping[str, Any]:
        """The entry ``raw`` read from Redis under ``key``.

        Raises:
            ValueError: It is not a JSON object (it is evicted first).
        """
        try:
            value = _decode(raw)
        except ValueError:
            self.delete(key)
            raise
        assert value is not None
        return value

    async def adecoded(self, key: str, raw: bytes) -> Mapping[str, Any]:
        """Async twin of `decoded`."""
        try:
            value = _decode(raw)
        except ValueError:
            await self.adelete(key)
            raise
        assert value is not None
        return value

    def stage(
        self, key: str, value: Mapping[str, Any], ttl: float | None
    ) -> tuple[str, int | None]:
        """Store ``value`` in this process's cache; its JSON text and expiry in ms for Redis.

        Raises:
            ValueError: ``value`` is not JSON-encodable (NaN, say).
        """
        self._local.set(key, value, ttl)
        return _dumps(value), _ms(ttl)

    def clear(self) -> None:
        """Remove every entry of this namespace, in Redis and here."""
        self._local.clear()
        self._counted = None
        link = self._link
        if link.usable():
            try:
                batch: list[bytes] = []
                for name in link.client.scan_iter(match=self._prefix + "*", count=500):
                    batch.append(name)
                    if len(batch) >= 500:
                        link.client.unlink(*batch)
                        batch.clear()
                if batch:
                    link.client.unlink(*batch)
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()

    def __len__(self) -> int:
        """Entries of this namespace in Redis: a SCAN (one round trip per 1,000 keys), so
        the count is reused for `COUNT_FOR` seconds (metrics read it on every snapshot)."""
        link = self._link
        now = link.clock.monotonic()
        counted = self._counted
        if counted is not None and now - counted[0] < COUNT_FOR:
            return counted[1]
        if link.usable():
            try:
                names = link.client.scan_iter(match=self._prefix + "*", count=1000)
                count = sum(1 for _ in names)
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()
                self._counted = (now, count)
                return count
        return len(self._local)

    def __repr__(self) -> str:
        return f"RedisCache(namespace={self._link.namespace!r})"


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(int(ttl * 1000), 1)
