"""One Redis round trip before a request's first attempt, one after its answer.

With `RedisState` sharing the cache, a cacheable request begins with one script (``BEGIN``)
that reads the cache entry and, on a miss, takes the single-flight lease (``SET NX PX``)
and, when the route's first model has a `SharedBreaker`, runs that model's admission (the
``ADMIT`` script of `_redis_lua`, run as a function inside ``BEGIN``: one source of truth).
A hit or a follower takes no trial lease. The admission decided there is handed to the
engine's first attempt on that model as a `Preadmitted` ticket, which the breaker's
``admit``/``aadmit`` consume once; a ticket nobody consumed (the model was skipped, the
request was cancelled) is released by the server in a ``finally``. The answer is written
and the lease freed by one more script (``FINISH``). A cache-miss request whose first
attempt succeeds costs two round trips; a hit costs one.

Abandoned round trips: a caller interrupted (cancelled, ``KeyboardInterrupt``, a Redis
timeout) while ``BEGIN`` or ``ADMIT`` is on the wire may have been granted a lease it will
never use. ``VOID`` frees every lease this caller's token holds and leaves a marker under
the token that makes a late ``BEGIN``/``ADMIT`` of that token grant nothing (the abandoned
command may reach Redis after ``VOID`` on another connection). Async callers send it from
a task of their loop (never blocking it); sync callers send it before re-raising an
interruption, and from a daemon thread when the Redis call failed (the request goes on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from reliable_llm.backends import _redis_lua as lua
from reliable_llm.backends import _redis_lua_windows as lua_windows
from reliable_llm.backends._redis_link import kept

if TYPE_CHECKING:
    from reliable_llm._breaker import Ticket
    from reliable_llm.backends._redis_breaker import SharedBreaker
    from reliable_llm.backends._redis_link import Link

__all__ = [
    "BEGIN",
    "FINISH",
    "GUARDED_ADMIT",
    "GUARDED_PANIC",
    "VOID",
    "Preadmitted",
    "ascript",
    "script",
    "void",
    "void_key",
    "void_later",
    "void_now",
    "void_soon",
]

logger = logging.getLogger("reliable_llm")

# Answers of BEGIN (its first element).
LEAD, HIT, FOLLOW, VOIDED = 0, 1, 2, 3

# A marker under the caller's token: its late BEGIN or ADMIT grants nothing.
_VOIDED = "if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return {%s} end\n"

GUARDED_ADMIT = (
    """
-- KEYS: those of ADMIT, then the void marker of this admission's token (last).
"""
    + _VOIDED % "1, 0, 0, 0, 0"
    + lua.ADMIT
)
"""``ADMIT``, unless its caller abandoned it (`VOID` ran first)."""

GUARDED_PANIC = (
    """
-- KEYS: those of PANIC, then the void marker of this admission's token (last).
"""
    + _VOIDED % "1, 0, 0, 0, 0"
    + lua_windows.PANIC
)
"""``PANIC`` (a panic trial), unless its caller abandoned it (`VOID` ran first)."""

BEGIN = (
    """
local function admit(KEYS, ARGV)
"""
    + lua.ADMIT
    + """
end
-- KEYS: cache entry, flight lease, [breaker hash, trial lease, cooldown,] void marker (last).
-- ARGV: token, flight lease ms ('0': take no lease, a stream's begin)[, trial lease ms].
-- Answers {1, entry} (a hit), {2} (another holds the lease: follow it), {3} (abandoned), or
-- {0[, ADMIT's answer]}: this caller leads, with the first model's admission when asked.
"""
    + _VOIDED % "3"
    + """
local entry = redis.call('GET', KEYS[1])
if entry then return {1, entry} end
if ARGV[2] ~= '0' and not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2}
end
if #KEYS < 6 then return {0} end
local a = admit({KEYS[3], KEYS[4], KEYS[5]}, {ARGV[3], ARGV[1]})
return {0, a[1], a[2], a[3], a[4], a[5]}
"""
)

FINISH = """
-- KEYS: cache entry, flight lease. ARGV: token, JSON text ('': nothing to store), ttl ms
-- ('': no expiry). Stores the answer, then frees the lease if this token holds it.
if ARGV[2] ~= '' then
  if ARGV[3] ~= '' then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

VOID = """
-- KEYS: the void marker, then leases. ARGV: token, ms the marker lives. Frees each lease this
-- token holds (a flight lease holds the token, a trial lease 'token@generation').
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
local freed = 0
local mine = ARGV[1] .. '@'
for i = 2, #KEYS do
  local held = redis.call('GET', KEYS[i])
  if held and (held == ARGV[1] or string.sub(held, 1, #mine) == mine) then
    redis.call('DEL', KEYS[i])
    freed = freed + 1
  end
end
return freed
"""

_SOURCES = {
    "BEGIN": BEGIN,
    "FINISH": FINISH,
    "VOID": VOID,
    "GUARDED_ADMIT": GUARDED_ADMIT,
    "GUARDED_PANIC": GUARDED_PANIC,
}
_lock = threading.Lock()


def void_key(link: Link, token: str) -> str:
    """The key of ``token``'s void marker."""
    return f"{link.namespace}:void:{token}"


def script(link: Link, name: str) -> Any:
    """The sync client's registered script ``name`` of this module (``EVALSHA``)."""
    found = link.scripts.get(f"pipeline.{name}")
    if found is None:
        with _lock:
            found = link.scripts.setdefault(
                f"pipeline.{name}", link.client.register_script(_SOURCES[name])
            )
    return found


async def ascript(link: Link, name: str, keys: Sequence[str], args: Sequence[object]) -> Any:
    """Run the script ``name`` of this module with the running loop's asyncio client."""
    client, scripts = link._aclient()
    found = scripts.get(f"pipeline.{name}")
    if found is None:
        found = scripts[f"pipeline.{name}"] = client.register_script(_SOURCES[name])
    return await kept(found(keys=keys, args=args))


_RETRIES = (0.1, 0.2, 0.4)  # seconds between the tries of a background VOID


def void(link: Link, token: str, leases: Sequence[str], ms: int, retries: bool = False) -> bool:
    """Free the leases ``token`` holds and void its late commands; False when Redis did not
    answer (the leases expire on their own). With ``retries``, a failed try is repeated
    after each wait of `_RETRIES` (a busy Redis runs the late command, then this, when it
    wakes up)."""
    keys, args = (void_key(link, token), *leases), (token, ms)
    for wait in (*_RETRIES, None) if retries else (None,):
        try:
            script(link, "VOID")(keys=keys, args=args)
            return True
        except link.errors as exc:
            logger.debug("could not free an abandoned lease: %s", type(exc).__name__)
        if wait is not None:
            time.sleep(wait)
    return False


def void_now(link: Link, token: str, leases: Sequence[str], ms: int) -> None:
    """`void` before an interrupted sync caller re-raises; when Redis is too busy to answer
    now, `void_soon` goes on trying (the interruption is not held up)."""
    if not void(link, token, leases, ms):
        void_soon(link, token, leases, ms)


async def _avoid(link: Link, token: str, leases: Sequence[str], ms: int) -> None:
    import asyncio

    keys, args = (void_key(link, token), *leases), (token, ms)
    for wait in (*_RETRIES, None):
        try:
            await ascript(link, "VOID", keys, args)
            return
        except link.errors as exc:
            logger.debug("could not free an abandoned lease: %s", type(exc).__name__)
        if wait is not None:
            await asyncio.sleep(wait)


def void_soon(link: Link, token: str, leases: Sequence[str], ms: int) -> None:
    """`void` (with retries) from a daemon thread: a sync caller whose Redis call failed or
    timed out goes on at once (with its process's own state) while the late command is
    voided."""
    threading.Thread(
        target=void, args=(link, token, leases, ms, True), name="reliable-llm-void", daemon=True
    ).start()


def void_later(link: Link, token: str, leases: Sequence[str], ms: int) -> None:
    """`void` (with retries) from a task of the running loop: its caller, being cancelled,
    never waits."""
    import asyncio

    link.background(asyncio.get_running_loop(), _avoid(link, token, leases, ms))


class Preadmitted:
    """A first attempt's admission decided before the request began (in ``BEGIN``).

    Set as the breaker's current pre-admission for this thread or task: the breaker's next
    ``admit``/``aadmit`` there takes it instead of asking Redis. `close` (in the server's
    ``finally``) frees a trial nobody took.
    """

    __slots__ = ("_breaker", "_reset", "_ticket")

    def __init__(
        self, breaker: SharedBreaker, ticket: Ticket, var: ContextVar[Preadmitted | None]
    ) -> None:
        self._breaker = breaker
        # A list: ``pop`` hands the ticket out once, also across threads and copied contexts.
        self._ticket: list[Ticket] = [ticket]
        self._reset: tuple[ContextVar[Preadmitted | None], Token[Preadmitted | None]] = (
            var,
            var.set(self),
        )

    def take(self) -> Ticket | None:
        """The ticket, the first time; None after."""
        try:
            return self._ticket.pop()
        except IndexError:
            return None

    def close(self) -> None:
        """Stop offering the ticket; a trial nobody took frees the fleet's slot."""
        var, token = self._reset
        try:
            var.reset(token)
        except ValueError:  # closed from another context than it was set in
            var.set(None)
        ticket = self.take()
        if ticket is not None:
            from reliable_llm._breaker import Trial

            if type(ticket) is Trial:
                self._breaker.record_neutral(ticket)
