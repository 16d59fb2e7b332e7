"""The drivers: thin sync, async and streaming loops over `ModelAttempts`.

Every decision lives elsewhere (`next_step`, `ModelBreaker.admit`, `ModelAttempts`); the loops
here only call the provider within its deadline and hand outcomes to the attempts object,
which releases whatever it holds in one ``finally``. The sync and async twins sit side by side
so they cannot drift apart unnoticed.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from reliable_llm._attempts import ModelAttempts
from reliable_llm._breaker import Admission, Ticket
from reliable_llm._clock import Clock
from reliable_llm._deadline import ChunkPump, call_with_timeout, within
from reliable_llm._events import EventHook
from reliable_llm._plan import Plan
from reliable_llm._stream import StreamAccumulator
from reliable_llm._types import ChatResponse, StreamChunk

__all__ = ["Engine", "StreamState"]

_REJECTED = Admission.REJECTED
# What timed out when a started stream stalls: the idle bound, or the request's deadline.
_NEXT_CHUNK = "waiting for the next stream chunk (stream_idle, within the request's deadline)"


class StreamState:
    """What a stream leaves behind: the partial answer so far and, once complete, the response."""

    __slots__ = ("partial", "response")

    def __init__(self) -> None:
        self.partial: StreamAccumulator | None = None
        self.response: ChatResponse | None = None


class Engine:
    """Runs plans: tries each model in turn, with breaker admission and bounded retries."""

    __slots__ = ("clock", "emit", "random")

    #: Whether a deployment group's waiter may go on in a new order (`Plan.regroup`): this
    #: engine's loops start the route again then.
    regroups = True

    def __init__(self, clock: Clock, random: Callable[[], float], emit: EventHook) -> None:
        self.clock = clock
        self.random = random
        self.emit = emit

    def _cooldown_wait(self, plan: Plan, index: int) -> float:
        """Seconds to wait out a rejected model's shared Retry-After cooldown (0: give it up).

        Only the route's last model is waited for (an earlier one is skipped: the next may
        answer now), and only when the wait fits the deadline and the model's retry policy.
        """
        entries = plan.entries
        if index != len(entries) - 1:
            return 0.0
        entry = entries[index]
        left = entry.breaker.cooldown()
        if left <= 0:
            return 0.0
        wait = left + 0.01  # Redis's expiry, seen from here, may trail ours by a round trip
        if wait > entry.retry.max_retry_after or wait >= plan.deadline - self.clock.monotonic():
            return 0.0
        return wait

    def _waited_out(self, plan: Plan, index: int) -> Ticket:
        """For a rejected model: wait out its cooldown when `_cooldown_wait` says to, and ask
        again; REJECTED otherwise."""
        wait = self._cooldown_wait(plan, index)
        if not wait:
            return _REJECTED
        self.clock.sleep(wait)
        return plan.entries[index].breaker.admit(plan.per_attempt)

    async def _awaited_out(self, plan: Plan, index: int) -> Ticket:
        """Async twin of `_waited_out`."""
        wait = self._cooldown_wait(plan, index)
        if not wait:
            return _REJECTED
        await self.clock.asleep(wait)
        breaker = plan.entries[index].breaker
        lease = plan.per_attempt
        return await breaker.aadmit(lease) if breaker.remote else breaker.admit(lease)

    # -- complete ----------------------------------------------------------------------------

    def run(self, plan: Plan) -> ChatResponse:
        """Serve the plan with blocking calls."""
        while True:  # again only when a group's waiter goes on in a new order
            for index, entry in enumerate(plan.entries):
                breaker = entry.breaker
                if plan.has_parts and (skipped := plan.fit(entry)) is not None:
                    failure = skipped  # cannot take the request's content: not called
                elif (
                    (ticket := breaker.admit(plan.per_attempt)) is _REJECTED
                    # cooling down (only a shared breaker has cooldowns), last model: wait if it
                    # fits, then ask again
                    and (
                        not breaker.remote or (ticket := self._waited_out(plan, index)) is _REJECTED
                    )
                    # open; in panic mode it may take a trial early
                    and (
                        not breaker.panic_threshold
                        or (ticket := breaker.admit_in_panic(plan.entries, plan.per_attempt))
                        is _REJECTED
                    )
                ):
                    failure = entry.rejection() if breaker.remote else entry.circuit_open
                else:
                    tries = ModelAttempts(self, entry, plan, ticket)
                    try:
                        response = self._complete(tries)
                        if response is not None:
                            return response
                    finally:
                        tries.release()
                    assert tries.failure is not None
                    failure = tries.failure
                if plan.give_up(index, failure, self.emit):
                    break
            if not plan.regrouped():
                raise plan.error()

    def _complete(self, tries: ModelAttempts) -> ChatResponse | None:
        provider = tries.provider
        plan = tries.plan
        request = plan.fitted if plan.has_parts else plan.request
        inline = provider.enforces_timeout
        while (timeout := tries.start()) is not None:
            try:
                if inline:
                    response = provider.complete(request, timeout=timeout)
                else:
                    call = functools.partial(provider.complete, request, timeout=timeout)
                    response = call_with_timeout(call, timeout)
            except Exception as exc:
                delay = tries.failed(exc)
                if delay is None:
                    return None
                self.clock.sleep(delay)
            else:
                return tries.succeeded(response)
        return None

    async def arun(self, plan: Plan) -> ChatResponse:
        """Serve the plan without blocking the event loop."""
        while True:  # again only when a group's waiter goes on in a new order
            for index, entry in enumerate(plan.entries):
                breaker = entry.breaker  # a shared breaker is asked without blocking the loop
                lease = plan.per_attempt
                if plan.has_parts and (skipped := plan.fit(entry)) is not None:
                    failure = skipped  # cannot take the request's content: not called
                elif (
                    (
                        ticket := await breaker.aadmit(lease)
                        if breaker.remote
                        else breaker.admit(lease)
                    )
                    is _REJECTED
                    # cooling down (only a shared breaker has cooldowns), last model: wait if it
                    # fits, then ask again
                    and (
                        not breaker.remote
                        or (ticket := await self._awaited_out(plan, index)) is _REJECTED
                    )
                    # open; in panic mode it may take a trial early
                    and (
                        not breaker.panic_threshold
                        or (
                            ticket := await breaker.aadmit_in_panic(plan.entries, lease)
                            if breaker.remote
                            else breaker.admit_in_panic(plan.entries, lease)
                        )
                        is _REJECTED
                    )
                ):
                    failure = entry.rejection() if breaker.remote else entry.circuit_open
                else:
                    tries = ModelAttempts(self, entry, plan, ticket)
                    try:
                        response = await self._acomplete(tries)
                        if response is not None:
                            return response
                    finally:
                        tries.release()
                    assert tries.failure is not None
                    failure = tries.failure
                if plan.give_up(index, failure, self.emit):
                    break
            if not plan.regrouped():
                raise plan.error()

    async def _acomplete(self, tries: ModelAttempts) -> ChatResponse | None:
        provider = tries.provider
        plan = tries.plan
        request = plan.fitted if plan.has_parts else plan.request
        while (timeout := tries.start()) is not None:
            try:
                response = await within(provider.acomplete(request, timeout=timeout), timeout)
            except Exception as exc:
                delay = tries.failed(exc)
                if delay is None:
                    return None
                await self.clock.asleep(delay)
            else:
                return tries.succeeded(response)
        return None

    # -- stream ------------------------------------------------------------------------------

    def stream(self, plan: Plan, state: StreamState) -> Iterator[StreamChunk]:
        """Stream from the first model that yields a chunk; ``state`` gets the whole answer."""
        start = 0
        while (opened := self._open_route(plan, start)) is not None:
            index, tries, source, chunk = opened
            try:
                yielded = chunk is not None
                acc = state.partial = StreamAccumulator()
                entry = tries.entry
                name = entry.name
                try:
                    while chunk is not None:
                        acc.add(chunk)
                        if chunk.model != name:
                            chunk.model = name  # built fresh by the provider, for us
                        yield chunk
                        chunk = source.next(tries.chunk_timeout(), _NEXT_CHUNK)
                except Exception as exc:
                    tries.interrupted(exc, acc.text)
                finally:
                    source.close()
                provider = entry.provider.provider_name
                response = tries.succeeded(acc.response(provider=provider))
                if response is not None:
                    state.response = response
                    return
                if yielded:  # rejected by a validator after chunks reached the caller
                    tries.rejected_stream(acc.text)
            finally:
                tries.release()
            assert tries.failure is not None
            if plan.give_up(index, tries.failure, self.emit):
                break
            start = index + 1
        raise plan.error()

    def _open_route(self, plan: Plan, start: int) -> _Opened | None:
        """From the model at ``start`` on, the first whose stream opens: its index, attempts
        (released by the caller), source and first chunk. None when the route has ended."""
        while True:  # again only when a group's waiter goes on in a new order
            entries = plan.entries
            for index in range(start, len(entries)):
                entry = entries[index]
                if plan.has_parts and (skipped := plan.fit(entry)) is not None:
                    if plan.give_up(index, skipped, self.emit):  # cannot take the content
                        break
                    continue
                ticket = entry.breaker.admit(plan.per_attempt)
                if ticket is _REJECTED:
                    ticket = self._waited_out(plan, index)
                if ticket is _REJECTED and (  # open; in panic mode it may take a trial early
                    not entry.breaker.panic_threshold
                    or (ticket := entry.breaker.admit_in_panic(entries, plan.per_attempt))
                    is _REJECTED
                ):
                    if plan.give_up(index, entry.rejection(), self.emit):
                        break
                    continue
                tries = ModelAttempts(self, entry, plan, ticket)
                opened = None
                try:
                    opened = self._open(tries)
                finally:
                    if opened is None:
                        tries.release()
                if opened is not None:
                    return index, tries, opened[0], opened[1]
                assert tries.failure is not None
                if plan.give_up(index, tries.failure, self.emit):
                    break
            if not plan.regrouped():
                return None
            start = 0

    def _open(self, tries: ModelAttempts) -> tuple[_Source, StreamChunk | None] | None:
        provider = tries.provider
        plan = tries.plan
        request = plan.fitted if plan.has_parts else plan.request
        while (timeout := tries.start()) is not None:
            source: _Source | None = None
            try:
                if provider.enforces_timeout:
                    source = _Inline(provider.stream(request, timeout=timeout))
                else:
                    source = ChunkPump(functools.partial(provider.stream, request, timeout=timeout))
                first = source.next(timeout)
            except Exception as exc:
                if source is not None:
                    source.close()
                delay = tries.failed(exc)
                if delay is None:
                    return None
                self.clock.sleep(delay)
            except BaseException:
                if source is not None:
                    source.close()
                raise
            else:
                tries.first_chunk = self.clock.monotonic() - tries.started
                return source, first
        return None

    async def astream(self, plan: Plan, state: StreamState) -> AsyncIterator[StreamChunk]:
        """Async twin of `stream`."""
        start = 0
        while (opened := await self._aopen_route(plan, start)) is not None:
            index, tries, iterator, chunk = opened
            try:
                yielded = chunk is not None
                acc = state.partial = StreamAccumulator()
                entry = tries.entry
                name = entry.name
                try:
                    while chunk is not None:
                        acc.add(chunk)
                        if chunk.model != name:
                            chunk.model = name
                        yield chunk
                        chunk = await within(
                            anext(iterator, None), tries.chunk_timeout(), _NEXT_CHUNK
                        )
                except Exception as exc:
                    tries.interrupted(exc, acc.text)
                finally:
                    await _aclose(iterator)
                provider = entry.provider.provider_name
                response = tries.succeeded(acc.response(provider=provider))
                if response is not None:
                    state.response = response
                    return
                if yielded:  # rejected by a validator after chunks reached the caller
                    tries.rejected_stream(acc.text)
            finally:
                tries.release()
            assert tries.failure is not None
            if plan.give_up(index, tries.failure, self.emit):
                break
            start = index + 1
        raise plan.error()

    async def _aopen_route(self, plan: Plan, start: int) -> _AOpened | None:
        """Async twin of `_open_route`."""
        while True:  # again only when a group's waiter goes on in a new order
            entries = plan.entries
            for index in range(start, len(entries)):
                entry = entries[index]
                if plan.has_parts and (skipped := plan.fit(entry)) is not None:
                    if plan.give_up(index, skipped, self.emit):  # cannot take the content
                        break
                    continue
                breaker = entry.breaker  # a shared breaker is asked without blocking the loop
                lease = plan.per_attempt
                ticket = await breaker.aadmit(lease) if breaker.remote else breaker.admit(lease)
                if ticket is _REJECTED:
                    ticket = await self._awaited_out(plan, index)
                if ticket is _REJECTED and (  # open; in panic mode it may take a trial early
                    not breaker.panic_threshold
                    or (
                        ticket := await breaker.aadmit_in_panic(entries, lease)
                        if breaker.remote
                        else breaker.admit_in_panic(entries, lease)
                    )
                    is _REJECTED
                ):
                    if plan.give_up(index, entry.rejection(), self.emit):
                        break
                    continue
                tries = ModelAttempts(self, entry, plan, ticket)
                opened = None
                try:
                    opened = await self._aopen(tries)
                finally:
                    if opened is None:
                        tries.release()
                if opened is not None:
                    return index, tries, opened[0], opened[1]
                assert tries.failure is not None
                if plan.give_up(index, tries.failure, self.emit):
                    break
            if not plan.regrouped():
                return None
            start = 0

    async def _aopen(
        self, tries: ModelAttempts
    ) -> tuple[AsyncIterator[StreamChunk], StreamChunk | None] | None:
        provider = tries.provider
        plan = tries.plan
        request = plan.fitted if plan.has_parts else plan.request
        while (timeout := tries.start()) is not None:
            iterator: AsyncIterator[StreamChunk] | None = None
            try:
                iterator = aiter(provider.astream(request, timeout=timeout))
                first = await within(anext(iterator, None), timeout)
            except Exception as exc:
                await _aclose(iterator)
                delay = tries.failed(exc)
                if delay is None:
                    return None
                await self.clock.asleep(delay)
            except BaseException:
                await _aclose(iterator)
                raise
            else:
                tries.first_chunk = self.clock.monotonic() - tries.started
                return iterator, first
        return None


class _Inline:
    """A provider's own chunk iterator, for providers that enforce their timeouts."""

    __slots__ = ("_iterator",)

    def __init__(self, iterable: Any) -> None:
        self._iterator: Iterator[StreamChunk] = iter(iterable)

    def next(self, timeout: float, what: str = "") -> StreamChunk | None:
        return next(self._iterator, None)

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()


_Source = _Inline | ChunkPump[StreamChunk]
# A stream that opened: the model's index in the route, its attempts, source and first chunk.
_Opened = tuple[int, ModelAttempts, _Source, StreamChunk | None]
_AOpened = tuple[int, ModelAttempts, AsyncIterator[StreamChunk], StreamChunk | None]


async def _aclose(iterator: object) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
