"""A deployment's rate limits shared by every process: the sliding window lives in Redis.

`SharedRateLimiter` is a `reliable_llm._ratelimit.RateLimiter` with the semantics of
`LocalRateLimiter` (requests and tokens per minute over an exact sliding window; a reservation
of the request's estimate that `settle` replaces with the usage the provider reported; a
refusal naming the limit and the seconds until there is room), decided for the whole fleet
by one Lua script per decision on Redis ``TIME``, the fleet's one clock. Round trips:

- ``try_acquire`` / ``atry_acquire``: one (``ACQUIRE`` evicts what left the window, decides,
  and records the call), admitted or refused;
- ``settle``: one more, once the call ends, only for a call that was admitted with a
  tokens-per-minute limit (or the ``lowest_usage`` strategy) and whose provider reported
  usage. On an event loop's thread it is sent by a task of that loop: the loop never waits
  on Redis and the answer is not waited for;
- ``usage``: none (the fleet's counts as of this process's last answer from Redis; the
  ``lowest_usage`` strategy reads them per request). ``snapshot``: one.

Keys, per deployment id (``"<registered name>[<deployment>]"``, so every process that
registers the same group shares them): ``<namespace>:limits:<id>``, a sorted set of the
window's calls (reservation id -> admission time, Redis ms), and ``<namespace>:limits:<id>:tokens``,
a hash of each call's tokens (``'+'``: their sum; ``'#'``: the last reservation id). Both
expire a window after the last admission, so an idle deployment leaves nothing behind;
a reservation id starts at Redis ms x 1000 whenever the keys are new, so an id from before
they expired is never issued again (a late ``settle`` of it finds nothing and does nothing).

While Redis is unavailable or slow (see `Link`), each process limits alone with a
`LocalRateLimiter` of the same limits, as without shared state; its reservations are
negative numbers (``-1 - local``), so a call admitted during an outage is settled where it was
counted. Calls admitted by one side are not counted by the other: around an outage the fleet
may send up to one process's limit more in a minute.

Hand-written Lua rather than a library's limiter: none of redis-py's neighbours (``limits``'
Redis storage, ``redis-cell``'s GCRA) corrects a reservation after the fact or reports when a
tokens limit frees, and ``redis-cell`` is a server module we cannot assume.
"""

from __future__ import annotations

import math
import weakref
from asyncio import _get_running_loop
from typing import TYPE_CHECKING, Any

from reliable_llm._ratelimit import (
    REQUESTS_PER_MINUTE,
    TOKENS_PER_MINUTE,
    WINDOW,
    LocalRateLimiter,
    Refusal,
    Reservation,
    check_limit,
)
from reliable_llm.backends._redis_link import kept

if TYPE_CHECKING:
    from reliable_llm._clock import Clock
    from reliable_llm.backends._redis_link import Link

__all__ = ["ACQUIRE", "PEEK", "SETTLE", "SharedRateLimiter"]

WINDOW_MS = int(WINDOW * 1000)
TTL_MS = WINDOW_MS + 1000
"""Keys expire this long after the last admission: the window, and a second to spare."""

_PAGE = 256  # calls read (or evicted) at a time, within Lua's limit on unpack()

# Evict the calls that left the window (those admitted at or before now - window, as
# LocalRateLimiter does), a page at a time; `sum` is the window's tokens afterwards.
_PRELUDE = f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = {WINDOW_MS}
local horizon = now - window
local sum = tonumber(redis.call('HGET', KEYS[2], '+')) or 0
while true do
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon, 'LIMIT', 0, {_PAGE})
  if #old == 0 then break end
  local counts = redis.call('HMGET', KEYS[2], unpack(old))
  local gone = 0
  for i = 1, #old do gone = gone + (tonumber(counts[i]) or 0) end
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
  sum = redis.call('HINCRBY', KEYS[2], '+', -gone)
  if #old < {_PAGE} then break end
end
local n = redis.call('ZCARD', KEYS[1])
"""

ACQUIRE = (
    _PRELUDE
    + f"""
-- ARGV: tokens (the estimate), rpm ('0': none), tpm ('0': none).
-- Answers {{verdict, value, requests, tokens}}: verdict 0 admitted (value: the reservation
-- id), 1 refused at rpm, 2 refused at tpm (value: ms until there is room; -1: never).
local tokens = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
if rpm > 0 and n >= rpm then
  -- Room once the oldest calls beyond the limit have left the window.
  local at = redis.call('ZRANGE', KEYS[1], n - rpm, n - rpm, 'WITHSCORES')
  return {{1, tonumber(at[2]) + window - now, n, sum}}
end
if tpm > 0 and sum + tokens > tpm then
  if tokens > tpm then return {{2, -1, n, sum}} end
  local excess = sum + tokens - tpm
  local start = 0
  while true do
    local page = redis.call('ZRANGE', KEYS[1], start, start + {_PAGE - 1}, 'WITHSCORES')
    if #page == 0 then break end
    local ids = {{}}
    for i = 1, #page, 2 do ids[#ids + 1] = page[i] end
    local counts = redis.call('HMGET', KEYS[2], unpack(ids))
    for i = 1, #ids do
      excess = excess - (tonumber(counts[i]) or 0)
      if excess <= 0 then return {{2, tonumber(page[2 * i]) + window - now, n, sum}} end
    end
    start = start + {_PAGE}
  end
  return {{2, 0, n, sum}}
end
local id = redis.call('HINCRBY', KEYS[2], '#', 1)
if id == 1 then
  -- New keys: start the ids at the clock, beyond any id issued before they expired.
  id = redis.call('HINCRBY', KEYS[2], '#', now * 1000)
end
redis.call('ZADD', KEYS[1], now, id)
redis.call('HSET', KEYS[2], id, tokens)
sum = redis.call('HINCRBY', KEYS[2], '+', tokens)
redis.call('PEXPIRE', KEYS[1], {TTL_MS})
redis.call('PEXPIRE', KEYS[2], {TTL_MS})
return {{0, id, n + 1, sum}}
"""
)

SETTLE = """
-- ARGV: reservation id, tokens reported. A call no longer in the window changes nothing.
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[2], '+', tonumber(ARGV[2]) - tonumber(old))
"""

PEEK = (
    _PRELUDE
    + """
return {n, sum}
"""
)


class SharedRateLimiter:
    """Requests- and tokens-per-minute limits of one deployment, for every process.

    Built by `reliable_llm.backends.RedisState.limiter` (`LLMManager` does it for each
    deployment with ``rpm`` or ``tpm`` when given ``shared_state``). Thread-safe: the state is
    in Redis, and the local fallback has its own lock.

    Args:
        deployment: The deployment id, ``"<registered name>[<deployment>]"``.
        rpm: Requests per minute, or None.
        tpm: Tokens per minute (input plus output), or None.
        clock: The manager's clock (the local fallback's window runs on it).
        link: The `RedisState`'s connection to Redis.

    Raises:
        ConfigurationError: ``rpm`` or ``tpm`` is not a positive int or None.
    """

    remote = True  # the async gate awaits `atry_acquire`

    __slots__ = (
        "_acquire",
        "_args",
        "_ascripts",
        "_keys",
        "_link",
        "_local",
        "_peek",
        "_requests",
        "_settle",
        "_tokens",
        "deployment",
        "rpm",
        "tpm",
    )

    def __init__(
        self, deployment: str, rpm: int | None, tpm: int | None, clock: Clock, link: Link
    ) -> None:
        self.rpm = check_limit("rpm", rpm)
        self.tpm = check_limit("tpm", tpm)
        self.deployment = deployment
        self._local = LocalRateLimiter(rpm, tpm, clock)
        self._link = link
        ns = link.namespace
        self._keys = (f"{ns}:limits:{deployment}", f"{ns}:limits:{deployment}:tokens")
        self._args = (self.rpm or 0, self.tpm or 0)
        client = link.client
        self._acquire = client.register_script(ACQUIRE)
        self._settle = client.register_script(SETTLE)
        self._peek = client.register_script(PEEK)
        # The asyncio client of each event loop, and its copies of the scripts.
        self._ascripts: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._requests = 0  # the fleet's counts in the window, as of the last answer
        self._tokens = 0

    # -- admission ------------------------------------------------------------------------------

    def _alone(self, tokens: int) -> Reservation | Refusal:
        """Redis is unavailable: this process limits alone (its reservations are negative)."""
        got = self._local.try_acquire(tokens)
        if type(got) is Refusal:
            return got
        return -1 - got  # type: ignore[operator]

    def _verdict(self, raw: list[Any]) -> Reservation | Refusal:
        verdict, value, requests, tokens = (int(x) for x in raw)
        self._requests = requests
        self._tokens = tokens
        if verdict == 0:
            return value
        limit = REQUESTS_PER_MINUTE if verdict == 1 else TOKENS_PER_MINUTE
        return Refusal(limit, math.inf if value < 0 else max(value, 0) / 1000.0)

    def try_acquire(self, tokens: int) -> Reservation | Refusal:
        """Admit one call of ``tokens`` estimated tokens for the fleet, or refuse it (one
        round trip; this process's own window while Redis is unavailable).

        Returns:
            A `Reservation` (`settle` it when the call ends), or a `Refusal` with the seconds
            until the call would fit (``math.inf`` when ``tokens`` alone exceed ``tpm``).
        """
        link = self._link
        if not link.usable():
            return self._alone(tokens)
        try:
            answer = self._acquire(keys=self._keys, args=(tokens, *self._args))
        except link.errors as exc:
            link.failed(exc)
            return self._alone(tokens)
        link.succeeded()
        return self._verdict(answer)

    def _scripts(self) -> tuple[Any, Any]:
        """The running loop's asyncio client's ``ACQUIRE`` and ``SETTLE`` scripts."""
        client = self._link.aclient()
        scripts = self._ascripts.get(client)
        if scripts is None:
            scripts = self._ascripts[client] = (
                client.register_script(ACQUIRE),
                client.register_script(SETTLE),
            )
        return scripts

    async def atry_acquire(self, tokens: int) -> Reservation | Refusal:
        """Async twin of `try_acquire` (redis-py's asyncio client: the loop never waits)."""
        link = self._link
        if not link.usable():
            return self._alone(tokens)
        try:
            answer = await kept(self._scripts()[0](keys=self._keys, args=(tokens, *self._args)))
        except link.errors as exc:
            link.failed(exc)
            return self._alone(tokens)
        link.succeeded()
        return self._verdict(answer)

    # -- settling -------------------------------------------------------------------------------

    def settle(self, reservation: Reservation, tokens: int) -> None:
        """Count ``tokens`` (as reported by the provider) instead of the call's estimate, for
        the fleet: one round trip, sent by a task when called on an event loop's thread.

        A call admitted during an outage is settled in this process; a call admitted by Redis
        whose settlement finds Redis unavailable keeps its estimate until it leaves the window.
        """
        if reservation < 0:
            self._local.settle(-1 - reservation, tokens)
            return
        link = self._link
        if not link.usable():
            return
        loop = _get_running_loop()
        if loop is not None:
            link.background(loop, self.asettle(reservation, tokens))
            return
        try:
            total = self._settle(keys=self._keys, args=(reservation, tokens))
        except link.errors as exc:
            link.failed(exc)
            return
        link.succeeded()
        if int(total) >= 0:
            self._tokens = int(total)

    async def asettle(self, reservation: Reservation, tokens: int) -> None:
        """Async twin of `settle`: awaits the round trip."""
        if reservation < 0:
            self._local.settle(-1 - reservation, tokens)
            return
        link = self._link
        try:
            total = await kept(self._scripts()[1](keys=self._keys, args=(reservation, tokens)))
        except link.errors as exc:
            link.failed(exc)
            return
        link.succeeded()
        if int(total) >= 0:
            self._tokens = int(total)

    # -- reading --------------------------------------------------------------------------------

    def usage(self) -> tuple[int, int]:
        """Requests and tokens in the fleet's window as of this process's last answer from
        Redis (no round trip); this process's own while Redis is unavailable."""
        if self._link.down_since is not None:
            return self._local.usage()
        return self._requests, self._tokens

    def snapshot(self) -> dict[str, Any]:
        """Limits and the fleet's current usage (one round trip), for `get_model_info`;
        ``shared`` is False when Redis is unavailable and the counts are this process's."""
        link = self._link
        if link.usable():
            try:
                answer = self._peek(keys=self._keys)
            except link.errors as exc:
                link.failed(exc)
            else:
                link.succeeded()
                self._requests, self._tokens = (int(x) for x in answer)
                return {
                    "rpm": self.rpm,
                    "tpm": self.tpm,
                    "requests": self._requests,
                    "tokens": self._tokens,
                    "shared": True,
                }
        return {**self._local.snapshot(), "shared": False}

    def __repr__(self) -> str:
        return f"SharedRateLimiter({self.deployment!r}, rpm={self.rpm}, tpm={self.tpm})"
