"""The gate in front of one deployment: its rate limits, its bulkhead and its latency record.

`GatedProvider` wraps a deployment's provider. Before a call goes upstream it takes a bulkhead
slot and a rate-limit reservation, or raises `CapacityExceeded` without sending anything; when
the call ends, however it ends (answer, error, timeout, cancellation, an abandoned stream,
``KeyboardInterrupt``), a ``finally`` gives the slot back and settles the reservation with the
tokens the provider reported. The slot is held for as long as the upstream call really runs,
so a blocking call that the manager stopped waiting for keeps its slot until it returns.

What a refused call leads to (skip the deployment, wait, or fail) is decided by
`reliable_llm._capacity.at_capacity`; when it decides to wait for a slot, it leaves word in
`SLOT_WAIT` and the gate waits at the bulkhead on the request's next call: in a group of
several deployments, on the group's queue (`reliable_llm._groupwait`), woken by a slot given
back on any of them.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn

from reliable_llm._bulkhead import Bulkhead
from reliable_llm._clock import Clock
from reliable_llm._groupwait import GroupQueue
from reliable_llm._provider import Provider
from reliable_llm._ratelimit import RateLimiter, Refusal, Reservation
from reliable_llm._types import ChatRequest, ChatResponse, StreamChunk, Usage

__all__ = [
    "MAX_CONCURRENT_CALLS",
    "SLOT_WAIT",
    "CapacityExceeded",
    "DeploymentState",
    "GatedProvider",
    "estimate_tokens",
]


MAX_CONCURRENT_CALLS = "max_concurrent_calls"
"""The limit a full bulkhead reports (rate limits report ``"rpm"`` or ``"tpm"``)."""

CHARS_PER_TOKEN = 4
"""OpenAI's rule of thumb for English text; used only to estimate a request before sending."""

LATENCY_WEIGHT = 0.3
"""Weight of the newest sample in a deployment's decaying latency average."""

# Seconds a full bulkhead is expected to stay full (the average latency over the slots,
# within these bounds): what a refusal reports as its ``retry_in``.
_POLL_MIN, _POLL_MAX, _POLL_UNKNOWN = 0.001, 0.1, 0.01

# Leave for the next call of one request to wait for a slot of one deployment: (the request,
# the deployment's state, the clock time to wait until, the group's queue to wait on or None
# to wait at the deployment's own bulkhead). Set by `at_capacity`, read by the gate; the
# request's identity keeps it from applying to any other call in the same context.
SLOT_WAIT: contextvars.ContextVar[tuple[object, object, float, GroupQueue | None] | None] = (
    contextvars.ContextVar("reliable_llm_slot_wait", default=None)
)


class CapacityExceeded(Exception):
    """A deployment refused a call at a client-side limit; nothing was sent upstream.

    Attributes:
        deployment: The deployment id.
        limit: ``"rpm"``, ``"tpm"`` or ``"max_concurrent_calls"``.
        retry_in: Seconds until the deployment has room (an estimate for a bulkhead).
    """

    def __init__(self, deployment: str, limit: str, retry_in: float) -> None:
        super().__init__(f"deployment {deployment!r} is at its {limit} limit")
        self.deployment = deployment
        self.limit = limit
        self.retry_in = retry_in


def estimate_tokens(request: ChatRequest) -> int:
    """The tokens a request may use, estimated before it is sent.

    ``ceil(characters / 4)`` of its message texts, tool-call arguments and tool definitions,
    plus ``max_tokens`` when set: how Azure OpenAI reserves tokens-per-minute quota for a
    request as it arrives (prompt estimate plus ``max_tokens``). The provider's reported usage
    replaces the estimate when the call ends.
    """
    messages = request.messages
    if len(messages) == 1 and not request.tools:  # one plain message: the common case
        message = messages[0]
        content: Any = message.content
        if type(content) is str and not message.tool_calls:
            tokens = -(-len(content) // CHARS_PER_TOKEN) + (request.max_tokens or 0)
            return tokens if tokens > 0 else 1
    chars = 0
    for message in messages:
        content = message.content
        if type(content) is str:
            chars += len(content)
        else:  # content parts: count the text they carry
            for part in content:
                text = getattr(part, "text", None)
                if isinstance(text, str):
                    chars += len(text)
        for call in message.tool_calls:
            chars += len(call.name) + len(call.arguments)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(repr(tool.parameters))
    tokens = -(-chars // CHARS_PER_TOKEN) + (request.max_tokens or 0)
    return tokens if tokens > 0 else 1


class DeploymentState:
    """What routing knows of one deployment: limits, calls in flight, recent latency.

    ``latency`` is a decaying average of seconds per call (time to the first chunk for a
    stream); a failed call counts as twice the average (or its own duration if longer), so a
    deployment that fails fast does not look fast. None until the first call.
    """

    __slots__ = (
        "announce",
        "bulkhead",
        "full_until",
        "index",
        "latency",
        "limiter",
        "name",
        "ready_at",
        "weight",
    )

    def __init__(
        self,
        name: str,
        index: int,
        weight: float,
        limiter: RateLimiter | None,
        bulkhead: Bulkhead | None,
    ) -> None:
        self.name = name
        self.index = index
        self.weight = weight
        self.limiter = limiter
        self.bulkhead = bulkhead
        self.latency: float | None = None
        self.full_until = -math.inf  # refused a call; known full until then (clock seconds)
        self.ready_at = -math.inf  # refused a call at a rate limit; room again then
        self.announce = True  # the next wait for its capacity is logged at INFO

    def observe(self, seconds: float, ok: bool) -> None:
        """Fold one call's duration into the latency average."""
        average = self.latency
        if average is None:
            self.latency = seconds if ok else 2 * seconds
            return
        if not ok:
            seconds = max(seconds, 2 * average)
        self.latency = average + LATENCY_WEIGHT * (seconds - average)

    def bulkhead_wait(self) -> float:
        """Seconds before a full bulkhead is worth checking again: about when a slot frees."""
        bulkhead = self.bulkhead
        average = self.latency
        if average is None or bulkhead is None or not bulkhead.limit:
            return _POLL_UNKNOWN
        return min(max(average / bulkhead.limit, _POLL_MIN), _POLL_MAX)

    def snapshot(self) -> dict[str, Any]:
        """Weight, limits, calls in flight and latency average, as a plain dict."""
        facts: dict[str, Any] = {"weight": self.weight, "latency_average": self.latency}
        snapshot = getattr(self.limiter, "snapshot", None)  # a RateLimiter may have none
        if snapshot is not None:
            facts["rate_limits"] = snapshot()
        if self.bulkhead is not None:
            facts["bulkhead"] = self.bulkhead.snapshot()
        return facts


class GatedProvider(Provider):
    """A deployment's provider behind its bulkhead and rate limits (see the module docstring).

    Everything else (``model``, ``check_request``, ``close``, ...) is the wrapped provider's.

    Args:
        inner: The deployment's own provider.
        state: Its routing state (limiter, bulkhead, latency average).
        clock: The manager's clock.
        timed: Whether to keep the latency average (the ``lowest_latency`` strategy reads it).
        count_tokens: Whether to estimate each request's tokens (a tokens-per-minute limit,
            or the ``lowest_usage`` strategy, needs them; a requests-only limit does not).
    """

    def __init__(
        self,
        inner: Provider,
        state: DeploymentState,
        clock: Clock,
        *,
        timed: bool = True,
        count_tokens: bool = True,
    ) -> None:
        self.inner = inner
        self.state = state
        self._clock = clock
        self._timed = timed
        self._count_tokens = count_tokens
        self.provider_name = inner.provider_name
        self.enforces_timeout = inner.enforces_timeout

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during construction or unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def warm(self) -> None:
        self.inner.warm()

    def describe(self) -> dict[str, object]:
        return self.inner.describe()

    # -- taking and giving back -------------------------------------------------------------

    def _slot_wait(
        self, request: ChatRequest, timeout: float | None
    ) -> tuple[float, GroupQueue | None] | None:
        """The clock time until which this call may wait for a bulkhead slot, and the group
        queue to wait on (None: the bulkhead's own): None unless the routing layer left leave
        for this request at this deployment; at most half the attempt's timeout from now, so
        the wait ends (and is retried) before the attempt could time out."""
        leave = SLOT_WAIT.get()
        if leave is None or leave[0] is not request or leave[1] is not self.state:
            return None
        deadline = leave[2]
        if timeout is not None:
            deadline = min(deadline, self._clock.monotonic() + timeout / 2)
        return deadline, leave[3]

    def _full(self) -> CapacityExceeded:
        state = self.state
        return CapacityExceeded(state.name, MAX_CONCURRENT_CALLS, state.bulkhead_wait())

    def _wait_for_slot(self, request: ChatRequest, timeout: float | None) -> None:
        bulkhead = self.state.bulkhead
        assert bulkhead is not None
        leave = self._slot_wait(request, timeout)
        if leave is None:
            raise self._full()
        deadline, group = leave
        if group is None:
            if not bulkhead.wait(self._clock, deadline):
                raise self._full()
        elif not group.wait(bulkhead, self._clock, deadline):
            raise self._full()  # time up, or another deployment of the group has room

    async def _await_slot(self, request: ChatRequest, timeout: float | None) -> None:
        bulkhead = self.state.bulkhead
        assert bulkhead is not None
        leave = self._slot_wait(request, timeout)
        if leave is None:
            raise self._full()
        deadline, group = leave
        if group is None:
            if not await bulkhead.await_slot(self._clock, deadline):
                raise self._full()
        elif not await group.await_slot(bulkhead, self._clock, deadline):
            raise self._full()  # time up, or another deployment of the group has room

    def _reserve(self, request: ChatRequest) -> Reservation | None:
        """The rate-limit reservation of a call holding its slot (the slot is given back if
        the call is refused)."""
        state = self.state
        limiter = state.limiter
        if limiter is None:
            return None
        got = limiter.try_acquire(estimate_tokens(request) if self._count_tokens else 1)
        if type(got) is Refusal:
            self._refused(got)
        return got  # type: ignore[return-value]

    async def _areserve(self, request: ChatRequest) -> Reservation:
        """`_reserve` for the async calls to a remote limiter: awaited, so the loop never
        waits on its round trip; the slot is given back if the call is refused or cancelled."""
        state = self.state
        limiter = state.limiter
        assert limiter is not None
        try:
            got = await limiter.atry_acquire(estimate_tokens(request) if self._count_tokens else 1)
        except BaseException:
            if state.bulkhead is not None:
                state.bulkhead.release()
            raise
        if type(got) is Refusal:
            self._refused(got)
        return got  # type: ignore[return-value]

    def _refused(self, refusal: Refusal) -> NoReturn:
        """The limiter refused a call holding a bulkhead slot: give the slot back, raise."""
        state = self.state
        if state.bulkhead is not None:
            state.bulkhead.release()
        raise CapacityExceeded(state.name, refusal.limit, refusal.retry_in)

    def _settle(self, reservation: Reservation | None, usage: Usage | None) -> None:
        if reservation is not None and usage is not None and self._count_tokens:
            limiter = self.state.limiter
            assert limiter is not None
            limiter.settle(reservation, usage.input_tokens + usage.output_tokens)

    # -- the calls ----------------------------------------------------------------------------

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        state = self.state
        bulkhead = state.bulkhead
        if bulkhead is not None and not bulkhead.try_acquire():
            self._wait_for_slot(request, timeout)
        limiter = state.limiter
        reservation: Reservation | None = None
        if limiter is not None:
            got = limiter.try_acquire(estimate_tokens(request) if self._count_tokens else 1)
            if type(got) is Refusal:
                self._refused(got)
            reservation = got  # type: ignore[assignment]
        timed = self._timed
        started = self._clock.monotonic() if timed else 0.0
        response = None
        try:
            response = self.inner.complete(request, timeout=timeout)
            if reservation is not None and self._count_tokens:
                self._settle(reservation, response.usage)
        finally:
            if bulkhead is not None:
                bulkhead.release()
            if timed:
                state.observe(self._clock.monotonic() - started, response is not None)
        return response

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        state = self.state
        bulkhead = state.bulkhead
        if bulkhead is not None and not bulkhead.try_acquire():
            await self._await_slot(request, timeout)
        limiter = state.limiter
        reservation: Reservation | None = None
        if limiter is not None:
            if limiter.remote:
                reservation = await self._areserve(request)
            else:
                got = limiter.try_acquire(estimate_tokens(request) if self._count_tokens else 1)
                if type(got) is Refusal:
                    self._refused(got)
                reservation = got  # type: ignore[assignment]
        timed = self._timed
        started = self._clock.monotonic() if timed else 0.0
        response = None
        try:
            response = await self.inner.acomplete(request, timeout=timeout)
            if reservation is not None and self._count_tokens:
                self._settle(reservation, response.usage)
        finally:
            if bulkhead is not None:
                bulkhead.release()
            if timed:
                state.observe(self._clock.monotonic() - started, response is not None)
        return response

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        # A generator: nothing is taken until the first chunk is asked for, and whatever was
        # taken is given back when the stream ends or is closed.
        state = self.state
        bulkhead = state.bulkhead
        if bulkhead is not None and not bulkhead.try_acquire():
            self._wait_for_slot(request, timeout)
        reservation = self._reserve(request)
        clock = self._clock
        started = clock.monotonic()
        first: float | None = None
        usage: Usage | None = None
        iterator: Iterator[StreamChunk] | None = None
        try:
            iterator = iter(self.inner.stream(request, timeout=timeout))
            for chunk in iterator:
                if first is None:
                    first = clock.monotonic() - started
                if chunk.usage is not None:
                    usage = chunk.usage
                yield chunk
        finally:
            try:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            finally:
                self._finish_stream(bulkhead, reservation, usage, first, started)

    async def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        state = self.state
        bulkhead = state.bulkhead
        if bulkhead is not None and not bulkhead.try_acquire():
            await self._await_slot(request, timeout)
        limiter = state.limiter
        reservation: Reservation | None
        if limiter is not None and limiter.remote:
            reservation = await self._areserve(request)
        else:
            reservation = self._reserve(request)  # no await where nothing waits
        clock = self._clock
        started = clock.monotonic()
        first: float | None = None
        usage: Usage | None = None
        iterator: AsyncIterator[StreamChunk] | None = None
        try:
            iterator = aiter(self.inner.astream(request, timeout=timeout))
            async for chunk in iterator:
                if first is None:
                    first = clock.monotonic() - started
                if chunk.usage is not None:
                    usage = chunk.usage
                yield chunk
        finally:
            self._finish_stream(bulkhead, reservation, usage, first, started)  # before awaits
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    def _finish_stream(
        self,
        bulkhead: Bulkhead | None,
        reservation: Reservation | None,
        usage: Usage | None,
        first: float | None,
        started: float,
    ) -> None:
        """Give back a stream's slot and settle its tokens; its latency is the first chunk's."""
        try:
            self._settle(reservation, usage)
            if self._timed:
                seconds = first if first is not None else self._clock.monotonic() - started
                self.state.observe(seconds, first is not None)
        finally:
            if bulkhead is not None:
                bulkhead.release()

    def __repr__(self) -> str:
        return f"GatedProvider({self.inner!r}, deployment={self.state.name!r})"
