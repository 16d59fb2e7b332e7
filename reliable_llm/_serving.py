"""Serving one planned request: cache lookup, single flight, the engine, the cache fill.

Every request is counted once, however it ends: a cache hit (one `CacheHit`), or a request
that went upstream (one `CacheMiss` when cacheable, then one `RequestFinished` emitted in a
``finally``: answered, failed or cancelled). The cache may fail without failing a request:
a backend error is a miss (or a lost entry) reported as a `CacheError` event and a warning.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from reliable_llm._cache import CacheBackend
from reliable_llm._clock import Clock
from reliable_llm._engine import Engine, StreamState
from reliable_llm._errors import AllModelsFailedError
from reliable_llm._events import CacheError, CacheHit, CacheMiss, EventHook, RequestFinished
from reliable_llm._plan import Plan
from reliable_llm._singleflight import Flight, FlightTimeout, SingleFlight
from reliable_llm._stream import response_to_chunks
from reliable_llm._tracing import Tracer
from reliable_llm._types import ChatResponse, StreamChunk, decode_response
from reliable_llm._validation import run_validators

if TYPE_CHECKING:
    from reliable_llm.backends._redis_cache import RedisCache
    from reliable_llm.backends._redis_flight import Begun, SharedFlight

__all__ = ["Server"]

logger = logging.getLogger("reliable_llm")

# Only complete answers are cached: not refusals, filtered or failed answers, nor answers with
# a finish reason nobody recognised (Anthropic's pause_turn, say).
_CACHEABLE_FINISH = frozenset(("stop", "length", "tool_calls"))


def _slot(plan: Plan) -> tuple[object, ...]:
    """What identical requests share: the answer (cache key), the route and the time budget.

    A request with another fallback chain or another ``timeout=`` runs its own plan.
    """
    # The budget as given, not deadline - started: float rounding would tell equals apart.
    # The route as registered (a deployment group's order differs from request to request);
    # requests with their own validators share only with requests holding the same ones.
    return (plan.key, plan.template, plan.total, plan.validators)


def _decoded(value: Mapping[str, Any]) -> ChatResponse | None:
    """The response stored in a cache entry, or None when the entry cannot be read."""
    try:
        return decode_response(value)
    except Exception:  # junk that fails even to be read (a hostile mapping, say)
        return None


class Server:
    """Serves plans through the cache and the engine, emitting request-level events."""

    __slots__ = (
        "_aget",
        "_aset",
        "cache",
        "clock",
        "emit",
        "engine",
        "flight",
        "records",
        "shared",
        "tracer",
    )

    def __init__(self, engine: Engine, cache: CacheBackend, clock: Clock, emit: EventHook) -> None:
        self.engine = engine
        self.cache = cache
        # A backend that does I/O offers async twins (``aget``/``aset``/``adelete``): the
        # async drivers await them, so the event loop never waits on a disk or a socket.
        # The in-memory cache has none and is called directly: an await would only cost.
        self._aget = getattr(cache, "aget", None)
        self._aset = getattr(cache, "aset", None)
        self.clock = clock
        self.emit = emit
        self.flight: SingleFlight[ChatResponse] = SingleFlight()
        # Whether `RequestFinished` carries the request's record (attempts, failures, ...):
        # set by the manager while a hook other than its own collector is installed.
        self.records = False
        # Single flight across processes (`RedisState`), set by the manager; None: this
        # process only.
        self.shared: SharedFlight | None = None
        # Set by a tracing exporter (`_tracing.Tracer`): it wraps each request in its trace.
        self.tracer: Tracer | None = None

    # -- the cache, which may fail --------------------------------------------------------------

    def _cache_failed(self, plan: Plan, operation: str, exc: BaseException) -> None:
        detail = f"{type(exc).__name__}: {exc}"
        self.emit(CacheError(plan.requested, operation, detail))
        logger.warning("cache %s failed for model %r (%s)", operation, plan.requested, detail)

    def lookup(self, plan: Plan) -> ChatResponse | None:
        """The cached answer (a fresh object, emitting `CacheHit`), or None.

        A cached answer that the request's own validators reject is a miss.

        Raises:
            ConfigurationError: One of the request's validators is broken (never a backend
                failure: those are misses).
        """
        key = plan.key
        assert key is not None
        try:
            value = self.cache.get(key)
        except Exception as exc:
            self._cache_failed(plan, "get", exc)
            return None
        if value is None:
            return None
        response = _decoded(value)
        if response is None:
            self._unreadable(plan, value)
            try:
                self._delete(key)
            except Exception as exc:
                self._cache_failed(plan, "delete", exc)
            return None
        if plan.validators and run_validators(plan.validators, response) is not None:
            return None  # stored by a request with laxer validators: this one goes upstream
        self.emit(CacheHit(plan.requested, response.model))
        return response

    async def alookup(self, plan: Plan) -> ChatResponse | None:
        """Async twin of `lookup`: awaits the backend's ``aget`` when it has one."""
        aget = self._aget
        if aget is None:
            return self.lookup(plan)
        key = plan.key
        assert key is not None
        try:
            value = await aget(key)
        except Exception as exc:
            self._cache_failed(plan, "get", exc)
            return None
        if value is None:
            return None
        response = _decoded(value)
        if response is None:
            self._unreadable(plan, value)
            adelete = getattr(self.cache, "adelete", None)
            try:
                await adelete(key) if adelete is not None else self._delete(key)
            except Exception as exc:
                self._cache_failed(plan, "delete", exc)
            return None
        if plan.validators and run_validators(plan.validators, response) is not None:
            return None  # stored by a request with laxer validators: this one goes upstream
        self.emit(CacheHit(plan.requested, response.model))
        return response

    def _unreadable(self, plan: Plan, value: Mapping[str, Any]) -> None:
        # Only the shape is reported: an entry's content (answers) stays out of logs.
        try:
            shape: object = sorted(map(str, value))[:8] if isinstance(value, Mapping) else None
        except Exception:
            shape = None
        shape = shape or type(value).__name__
        self._cache_failed(plan, "decode", ValueError(f"unreadable entry (keys {shape})"))

    def _delete(self, key: str) -> None:
        delete = getattr(self.cache, "delete", None)
        if delete is not None:
            delete(key)

    def _store(self, plan: Plan, response: ChatResponse) -> None:
        if plan.key is None or response.cached or response.finish_reason not in _CACHEABLE_FINISH:
            return
        try:
            self.cache.set(plan.key, response.to_dict(), plan.ttl)
        except Exception as exc:
            self._cache_failed(plan, "set", exc)

    async def _astore(self, plan: Plan, response: ChatResponse) -> None:
        aset = self._aset
        if aset is None:
            self._store(plan, response)
            return
        if plan.key is None or response.cached or response.finish_reason not in _CACHEABLE_FINISH:
            return
        import asyncio

        # Shielded: a caller cancelled while the answer is being written still leaves it
        # written for the next request; the cancellation reaches the caller all the same.
        try:
            await asyncio.shield(aset(plan.key, response.to_dict(), plan.ttl))
        except Exception as exc:
            self._cache_failed(plan, "set", exc)

    def _finished(
        self, plan: Plan, response: ChatResponse | None, cancelled: bool, stream: bool, usage: Any
    ) -> None:
        started = plan.started
        latency = self.clock.monotonic() - started
        model = None if response is None else response.model
        if response is not None:
            usage = response.usage
        if not self.records:  # nobody but the built-in collector listens: the short event
            self.emit(RequestFinished(plan.requested, model, latency, usage, stream, cancelled))
            return
        self.emit(
            RequestFinished(
                plan.requested,
                model,
                latency,
                usage,
                stream,
                cancelled,
                tuple(plan.attempts),
                tuple(plan.failures),
                response,
                plan.request,
                plan.route,
                plan.deadline - started,
            )
        )

    # -- complete -------------------------------------------------------------------------------

    def _run(self, plan: Plan, store: bool = True) -> ChatResponse:
        response = None
        cancelled = True
        try:
            response = self.engine.run(plan)
            cancelled = False
        except Exception:
            cancelled = False
            raise
        finally:
            self._finished(plan, response, cancelled, False, None)
        if store:
            self._store(plan, response)
        return response

    async def _arun(self, plan: Plan, store: bool = True) -> ChatResponse:
        response = None
        cancelled = True
        try:
            response = await self.engine.arun(plan)
            cancelled = False
        except Exception:
            cancelled = False
            raise
        finally:
            self._finished(plan, response, cancelled, False, None)
        if store:
            if self._aset is None:  # the in-memory cache: no coroutine to create and await
                self._store(plan, response)
            else:
                await self._astore(plan, response)
        return response

    def join_here(self, plan: Plan) -> tuple[Flight[ChatResponse] | None, ChatResponse | None]:
        """Join this process's flight of identical requests (`SingleFlight.join`) within the
        plan's deadline; a follower that waited too long, or was interrupted, is counted."""
        try:
            return self.flight.join(_slot(plan), plan.deadline - self.clock.monotonic())
        except FlightTimeout:
            raise self._waited_too_long(plan) from None
        except BaseException:  # a follower interrupted while it waited: count it
            self._finished(plan, None, True, False, None)
            raise

    async def ajoin_here(
        self, plan: Plan
    ) -> tuple[Flight[ChatResponse] | None, ChatResponse | None]:
        """Async twin of `join_here`."""
        try:
            return await self.flight.ajoin(_slot(plan), plan.deadline - self.clock.monotonic())
        except FlightTimeout:
            raise self._waited_too_long(plan) from None
        except BaseException:  # a follower interrupted while it waited: count it
            self._finished(plan, None, True, False, None)
            raise

    def _followed(self, plan: Plan, shared: ChatResponse) -> ChatResponse:
        """The answer an identical in-flight request obtained: the caller's own copy."""
        self.emit(CacheHit(plan.requested, shared.model))
        response = decode_response(shared.to_dict())
        assert response is not None
        return response

    def _waited_too_long(self, plan: Plan) -> AllModelsFailedError:
        self._finished(plan, None, False, False, None)
        return AllModelsFailedError((), deadline_exceeded=True)

    def serve(self, plan: Plan) -> ChatResponse:
        """Answer from the cache, an identical request in flight, or the engine."""
        if self.tracer is not None and plan.trace is None:
            return self.tracer.serve(self.serve, plan)
        if plan.key is None:
            return self._run(plan)
        fleet = self.shared
        if fleet is not None and fleet.covers(self.cache):
            from reliable_llm._serving_fleet import serve_fleet

            return serve_fleet(self, plan, fleet)
        cached = self.lookup(plan)
        if cached is not None:
            return cached
        flight, shared = self.join_here(plan)
        if shared is not None:
            return self._followed(plan, shared)
        return self._lead(plan, flight)

    def _lead(self, plan: Plan, flight: Flight[ChatResponse] | None) -> ChatResponse:
        token = None
        try:
            # Recheck as we take the lead: an identical request may just have landed.
            response = self.lookup(plan) if flight is not None else None
            if response is None and flight is not None and self.shared is not None:
                from reliable_llm._serving_fleet import join_fleet

                token, response = join_fleet(self, plan)
            if response is None:
                self.emit(CacheMiss(plan.requested))
                response = self._run(plan)
            if flight is not None:
                flight.result = response
            return response
        finally:
            if token is not None:
                assert self.shared is not None and plan.key is not None
                self.shared.release(plan.key, token)
            if flight is not None:
                flight.land()

    # -- the fleet's cache and flight: one round trip before, one after -------------------------

    def _entry_answer(self, plan: Plan, value: Mapping[str, Any]) -> ChatResponse | None:
        """The answer in an entry read with the lease (a hit: `CacheHit`), or None: a miss
        (an unreadable entry, reported, or one this request's validators reject)."""
        response = _decoded(value)
        if response is None:
            self._unreadable(plan, value)
            return None
        if plan.validators and run_validators(plan.validators, response) is not None:
            return None
        self.emit(CacheHit(plan.requested, response.model))
        return response

    async def aserve(self, plan: Plan) -> ChatResponse:
        """Async twin of `serve`."""
        if self.tracer is not None and plan.trace is None:
            return await self.tracer.aserve(self.aserve, plan)
        if plan.key is None:
            return await self._arun(plan)
        fleet = self.shared
        if fleet is not None and fleet.covers(self.cache):
            from reliable_llm._serving_fleet import aserve_fleet

            return await aserve_fleet(self, plan, fleet)
        cached = self.lookup(plan) if self._aget is None else await self.alookup(plan)
        if cached is not None:
            return cached
        flight, shared = await self.ajoin_here(plan)
        if shared is not None:
            return self._followed(plan, shared)
        token = None
        try:
            response = await self.alookup(plan) if flight is not None else None
            if response is None and flight is not None and self.shared is not None:
                from reliable_llm._serving_fleet import ajoin_fleet

                token, response = await ajoin_fleet(self, plan)
            if response is None:
                self.emit(CacheMiss(plan.requested))
                response = await self._arun(plan)
            if flight is not None:
                flight.result = response
            return response
        finally:
            if token is not None:
                assert self.shared is not None and plan.key is not None
                await self.shared.arelease(plan.key, token)
            if flight is not None:
                flight.land()

    # -- stream ---------------------------------------------------------------------------------

    def _stream_begin(self, plan: Plan) -> tuple[ChatResponse | None, Begun | None]:
        """A stream's cached answer, or on the fleet's cache its miss with the first model's
        admission (one round trip, no flight lease: streams are not joined)."""
        fleet = self.shared
        if fleet is None or not fleet.covers(self.cache):
            return self.lookup(plan), None
        key = plan.key
        assert key is not None
        cache: RedisCache = self.cache  # type: ignore[assignment]
        try:
            begun = fleet.begin(key, cache, plan.entries[0].breaker, plan.per_attempt, False)
        except Exception as exc:  # an unreadable entry, evicted: a miss
            self._cache_failed(plan, "get", exc)
            return None, None
        if begun is None:  # Redis unavailable: this process's cache
            return self.lookup(plan), None
        if begun.entry is not None:
            return self._entry_answer(plan, begun.entry), None
        return None, begun

    async def _astream_begin(self, plan: Plan) -> tuple[ChatResponse | None, Begun | None]:
        """Async twin of `_stream_begin`."""
        fleet = self.shared
        if fleet is None or not fleet.covers(self.cache):
            return (self.lookup(plan) if self._aget is None else await self.alookup(plan)), None
        key = plan.key
        assert key is not None
        cache: RedisCache = self.cache  # type: ignore[assignment]
        try:
            begun = await fleet.abegin(key, cache, plan.entries[0].breaker, plan.per_attempt, False)
        except Exception as exc:  # an unreadable entry, evicted: a miss
            self._cache_failed(plan, "get", exc)
            return None, None
        if begun is None:  # Redis unavailable: this process's cache
            return await self.alookup(plan), None
        if begun.entry is not None:
            return self._entry_answer(plan, begun.entry), None
        return None, begun

    def stream(self, plan: Plan, state: StreamState) -> Iterator[StreamChunk]:
        """Replay a cached answer, or stream from the engine and cache the completed answer."""
        if self.tracer is not None and plan.trace is None:
            yield from self.tracer.stream(self.stream, plan, state)
            return
        begun = None
        if plan.key is not None:
            cached, begun = self._stream_begin(plan)
            if cached is not None:
                state.response = cached
                yield from response_to_chunks(cached, cached=True)
                return
        cancelled = True
        try:
            if plan.key is not None:
                self.emit(CacheMiss(plan.requested))
            yield from self.engine.stream(plan, state)
            cancelled = False
        except Exception:
            cancelled = False
            raise
        finally:
            if begun is not None:
                begun.close()  # a pre-granted trial the engine never took
            partial = state.partial
            usage = None if partial is None else partial.usage
            self._finished(plan, state.response, cancelled, True, usage)
        assert state.response is not None
        self._store(plan, state.response)

    async def astream(self, plan: Plan, state: StreamState) -> AsyncIterator[StreamChunk]:
        """Async twin of `stream`."""
        if self.tracer is not None and plan.trace is None:
            traced = self.tracer.astream(self.astream, plan, state)
            try:
                async for chunk in traced:
                    yield chunk
            finally:
                await traced.aclose()  # type: ignore[attr-defined]
            return
        begun = None
        if plan.key is not None:
            cached, begun = await self._astream_begin(plan)
            if cached is not None:
                state.response = cached
                for chunk in response_to_chunks(cached, cached=True):
                    yield chunk
                return
        cancelled = True
        inner = self.engine.astream(plan, state)
        try:
            if plan.key is not None:
                self.emit(CacheMiss(plan.requested))
            async for chunk in inner:
                yield chunk
            cancelled = False
        except Exception:
            cancelled = False
            raise
        finally:
            # An async generator is not closed by its consumer's ``break``: close the engine's
            # now, so its attempts are released and recorded before the request is.
            await inner.aclose()  # type: ignore[attr-defined]
            if begun is not None:
                begun.close()  # a pre-granted trial the engine never took
            partial = state.partial
            usage = None if partial is None else partial.usage
            self._finished(plan, state.response, cancelled, True, usage)
        assert state.response is not None
        await self._astore(plan, state.response)
