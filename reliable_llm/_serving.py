"""Serving one prepared request: cache lookup, single flight, the engine, the cache fill."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import replace
from typing import Any

from reliable_llm._cache import CacheBackend
from reliable_llm._clock import Clock
from reliable_llm._engine import Engine, Plan
from reliable_llm._events import CacheHit, CacheMiss, EventHook, RequestFinished
from reliable_llm._singleflight import SingleFlight
from reliable_llm._stream import response_to_chunks
from reliable_llm._types import ChatResponse, StreamChunk

__all__ = ["Server"]


class Server:
    """Serves plans through the cache and the engine, emitting request-level events."""

    __slots__ = ("cache", "clock", "emit", "engine", "flight")

    def __init__(self, engine: Engine, cache: CacheBackend, clock: Clock, emit: EventHook) -> None:
        self.engine = engine
        self.cache = cache
        self.clock = clock
        self.emit = emit
        self.flight: SingleFlight[ChatResponse] = SingleFlight()

    def cached_value(self, requested: str, key: str) -> Mapping[str, Any] | None:
        """The cached answer under ``key`` (emitting a hit or a miss), or None."""
        value = self.cache.get(key)
        if value is None:
            self.emit(CacheMiss(requested))
        else:
            self.emit(CacheHit(requested, value["model"]))
        return value

    def cached(self, plan: Plan, key: str | None) -> ChatResponse | None:
        """The cached response for a plan, or None (always None when ``key`` is None)."""
        if key is None:
            return None
        value = self.cached_value(plan.requested, key)
        return None if value is None else ChatResponse.from_dict(value, cached=True)

    def _finished(self, plan: Plan, response: ChatResponse | None, stream: bool = False) -> None:
        latency = self.clock.monotonic() - plan.started
        if response is None:
            self.emit(RequestFinished(plan.requested, None, latency, stream=stream))
        else:
            self.emit(
                RequestFinished(plan.requested, response.model, latency, response.usage, stream)
            )

    def _run(self, plan: Plan) -> ChatResponse:
        try:
            response = self.engine.run(plan)
        except Exception:
            self._finished(plan, None)
            raise
        self._finished(plan, response)
        return response

    async def _arun(self, plan: Plan) -> ChatResponse:
        try:
            response = await self.engine.arun(plan)
        except Exception:
            self._finished(plan, None)
            raise
        self._finished(plan, response)
        return response

    def _shared(self, plan: Plan, response: ChatResponse) -> ChatResponse:
        """The answer an identical in-flight request obtained, served as a cache hit."""
        self.emit(CacheHit(plan.requested, response.model))
        return replace(response, cached=True, attempts=())

    def _recheck(self, plan: Plan, key: str) -> ChatResponse | None:
        """The cache again, as a request takes the lead: an identical one may just have ended."""
        value = self.cache.get(key)
        if value is None:
            return None
        self.emit(CacheHit(plan.requested, value["model"]))
        return ChatResponse.from_dict(value, cached=True)

    def _lead(self, plan: Plan, key: str, ttl: float | None) -> ChatResponse:
        # Stored before the followers are released, so no identical request can slip
        # between the end of this flight and the cache entry and go upstream again.
        response = self._recheck(plan, key) or self._run(plan)
        if not response.cached:
            self.cache.set(key, response.to_dict(), ttl)
        return response

    async def _alead(self, plan: Plan, key: str, ttl: float | None) -> ChatResponse:
        response = self._recheck(plan, key) or await self._arun(plan)
        if not response.cached:
            self.cache.set(key, response.to_dict(), ttl)
        return response

    def serve(self, plan: Plan, key: str | None, ttl: float | None) -> ChatResponse:
        """Go upstream (once for identical concurrent requests) and cache the answer."""
        if key is None:
            return self._run(plan)
        response, shared = self.flight.do(key, lambda: self._lead(plan, key, ttl))
        return self._shared(plan, response) if shared else response

    async def aserve(self, plan: Plan, key: str | None, ttl: float | None) -> ChatResponse:
        """Async twin of `serve`."""
        if key is None:
            return await self._arun(plan)
        response, shared = await self.flight.ado(key, lambda: self._alead(plan, key, ttl))
        return self._shared(plan, response) if shared else response

    def stream(
        self, plan: Plan, key: str | None, ttl: float | None
    ) -> Generator[StreamChunk, None, None]:
        """Replay a cached answer, or stream from the engine and cache the completed answer."""
        cached = self.cached(plan, key)
        if cached is not None:
            yield from response_to_chunks(cached, cached=True)
            return
        done: list[ChatResponse] = []
        try:
            yield from self.engine.stream(plan, done.append)
        except Exception:
            self._finished(plan, None, stream=True)
            raise
        if key is not None:
            self.cache.set(key, done[0].to_dict(), ttl)
        self._finished(plan, done[0], stream=True)

    async def astream(
        self, plan: Plan, key: str | None, ttl: float | None
    ) -> AsyncGenerator[StreamChunk, None]:
        """Async twin of `stream`."""
        cached = self.cached(plan, key)
        if cached is not None:
            for chunk in response_to_chunks(cached, cached=True):
                yield chunk
            return
        done: list[ChatResponse] = []
        try:
            async for chunk in self.engine.astream(plan, done.append):
                yield chunk
        except Exception:
            self._finished(plan, None, stream=True)
            raise
        if key is not None:
            self.cache.set(key, done[0].to_dict(), ttl)
        self._finished(plan, done[0], stream=True)
