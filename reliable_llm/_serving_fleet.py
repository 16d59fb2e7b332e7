"""Serving on the fleet's cache (`reliable_llm.backends.RedisState`): one round trip before
the first attempt, one after.

`serve_fleet` reads the entry, takes the single-flight lease and the first model's admission
in one round trip (`SharedFlight.begin`), and stores the answer as it frees the lease in one
more (`SharedFlight.finish`); identical requests of this process wait for its leader without
a round trip. Imported by `reliable_llm._serving` only when shared state is configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reliable_llm._events import CacheMiss
from reliable_llm._serving import _CACHEABLE_FINISH, _decoded
from reliable_llm._singleflight import FlightTimeout

if TYPE_CHECKING:
    from reliable_llm._plan import Plan
    from reliable_llm._serving import Server
    from reliable_llm._types import ChatResponse
    from reliable_llm.backends._redis_cache import RedisCache
    from reliable_llm.backends._redis_flight import Begun, SharedFlight

__all__ = ["ajoin_fleet", "aserve_fleet", "join_fleet", "serve_fleet"]


def join_fleet(
    server: Server, plan: Plan, follow: bool = False
) -> tuple[str | None, ChatResponse | None]:
    """Lead the fleet's flight (a token to release) or get its leader's cached answer."""
    assert server.shared is not None and plan.key is not None
    try:
        token, response = server.shared.join(
            plan.key, plan.deadline, server.clock, lambda: server.lookup(plan), follow
        )
    except FlightTimeout:
        raise server._waited_too_long(plan) from None
    except BaseException:
        server._finished(plan, None, True, False, None)
        raise
    if token is not None:  # an identical request may have landed as we took the lease
        response = server.lookup(plan)
    return token, response


async def ajoin_fleet(
    server: Server, plan: Plan, follow: bool = False
) -> tuple[str | None, ChatResponse | None]:
    """Async twin of `join_fleet`."""
    assert server.shared is not None and plan.key is not None

    try:
        token, response = await server.shared.ajoin(
            plan.key, plan.deadline, server.clock, lambda: server.alookup(plan), follow
        )
    except FlightTimeout:
        raise server._waited_too_long(plan) from None
    except BaseException:
        server._finished(plan, None, True, False, None)
        raise
    if token is not None:
        response = await server.alookup(plan)
    return token, response


def fleet_value(response: ChatResponse | None) -> Mapping[str, Any] | None:
    """What the leader stores as it frees the lease: its fresh, complete answer, if any."""
    if response is None or response.cached or response.finish_reason not in _CACHEABLE_FINISH:
        return None
    return response.to_dict()


def serve_fleet(server: Server, plan: Plan, fleet: SharedFlight) -> ChatResponse:
    """`Server.serve` on the fleet's cache: one round trip reads the entry, takes the lease and
    the first model's admission (`SharedFlight.begin`); one stores the answer and frees
    the lease (`SharedFlight.finish`). Identical requests of this process wait for its
    leader without a round trip."""
    key = plan.key
    assert key is not None
    flight, shared = server.join_here(plan)
    if shared is not None:
        return server._followed(plan, shared)
    if flight is None:  # a call made while leading this very request: on its own
        cached = server.lookup(plan)
        if cached is not None:
            return cached
        server.emit(CacheMiss(plan.requested))
        return server._run(plan)
    cache: RedisCache = server.cache  # type: ignore[assignment]
    begun: Begun | None = None
    token = response = None
    try:
        try:
            begun = fleet.begin(key, cache, plan.entries[0].breaker, plan.per_attempt)
        except Exception as exc:  # an unreadable entry, evicted: a miss
            server._cache_failed(plan, "get", exc)
            token, response = join_fleet(server, plan)
        except BaseException:
            server._finished(plan, None, True, False, None)
            raise
        else:
            if begun is None:  # Redis unavailable: this process's cache, on its own
                response = server.lookup(plan)
            elif begun.entry is not None:
                response = server._entry_answer(plan, begun.entry)
                if response is None:
                    if _decoded(begun.entry) is None:  # unreadable: evicted
                        server._delete(key)
                    token, response = join_fleet(server, plan)
            elif begun.token is None:  # another process leads: wait for its answer
                token, response = join_fleet(server, plan, follow=True)
            else:
                token = begun.token
        if response is None:
            server.emit(CacheMiss(plan.requested))
            response = server._run(plan, store=token is None)
        flight.result = response
        return response
    finally:
        try:
            if begun is not None:
                begun.close()
            if token is not None:
                try:
                    fleet.finish(key, token, cache, fleet_value(response), plan.ttl)
                except Exception as exc:
                    server._cache_failed(plan, "set", exc)
        finally:
            flight.land()


async def aserve_fleet(server: Server, plan: Plan, fleet: SharedFlight) -> ChatResponse:
    """Async twin of `serve_fleet`."""
    key = plan.key
    assert key is not None
    flight, shared = await server.ajoin_here(plan)
    if shared is not None:
        return server._followed(plan, shared)
    if flight is None:  # a call made while leading this very request: on its own
        cached = await server.alookup(plan)
        if cached is not None:
            return cached
        server.emit(CacheMiss(plan.requested))
        return await server._arun(plan)
    cache: RedisCache = server.cache  # type: ignore[assignment]
    begun: Begun | None = None
    token = response = None
    try:
        try:
            begun = await fleet.abegin(key, cache, plan.entries[0].breaker, plan.per_attempt)
        except Exception as exc:  # an unreadable entry, evicted: a miss
            server._cache_failed(plan, "get", exc)
            token, response = await ajoin_fleet(server, plan)
        except BaseException:
            server._finished(plan, None, True, False, None)
            raise
        else:
            if begun is None:  # Redis unavailable: this process's cache, on its own
                response = await server.alookup(plan)
            elif begun.entry is not None:
                response = server._entry_answer(plan, begun.entry)
                if response is None:
                    if _decoded(begun.entry) is None:  # unreadable: evicted
                        await cache.adelete(key)
                    token, response = await ajoin_fleet(server, plan)
            elif begun.token is None:  # another process leads: wait for its answer
                token, response = await ajoin_fleet(server, plan, follow=True)
            else:
                token = begun.token
        if response is None:
            server.emit(CacheMiss(plan.requested))
            response = await server._arun(plan, store=token is None)
        flight.result = response
        return response
    finally:
        try:
            if begun is not None:
                begun.close()
            if token is not None:
                import asyncio

                # Shielded: a caller cancelled while the answer is being written still
                # leaves it written, and the lease freed.
                value = fleet_value(response)
                try:
                    await asyncio.shield(fleet.afinish(key, token, cache, value, plan.ttl))
                except Exception as exc:
                    server._cache_failed(plan, "set", exc)
        finally:
            flight.land()
