"""The drivers: sync, async and streaming loops over routing, breaker and retry decisions.

Every decision lives elsewhere (`next_step`, `ModelBreaker.admit`); the loops here only call
the provider, record outcomes and emit events. The sync and async twins are kept side by side
so they cannot drift apart unnoticed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import NoReturn

from reliable_llm._breaker import Admission, BreakerState
from reliable_llm._classify import classify_exception
from reliable_llm._clock import Clock
from reliable_llm._decisions import next_step
from reliable_llm._errors import (
    AllModelsFailedError,
    ConfigurationError,
    FailureReason,
    ModelFailure,
    ProviderError,
    StreamInterruptedError,
)
from reliable_llm._events import EventHook, FallbackTaken, RetryScheduled
from reliable_llm._registry import ModelEntry
from reliable_llm._stream import StreamAccumulator
from reliable_llm._types import Attempt, ChatRequest, ChatResponse, StreamChunk

__all__ = ["Engine", "Plan"]

logger = logging.getLogger("reliable_llm")
_CLOSED = BreakerState.CLOSED
_debug_enabled = functools.partial(logger.isEnabledFor, logging.DEBUG)
_REJECTED = Admission.REJECTED


class Plan:
    """One request's route, deadline and record of attempts and failures."""

    __slots__ = (
        "attempts",
        "deadline",
        "entries",
        "failures",
        "per_attempt",
        "request",
        "requested",
        "started",
    )

    def __init__(
        self,
        requested: str,
        entries: tuple[ModelEntry, ...],
        request: ChatRequest,
        started: float,
        total: float,
        per_attempt: float,
    ) -> None:
        self.requested = requested
        self.entries = entries
        self.request = request
        self.started = started
        self.deadline = started + total
        self.per_attempt = per_attempt
        self.attempts: list[Attempt] = []
        self.failures: list[ModelFailure] = []

    def give_up(self, index: int, failure: ModelFailure, emit: EventHook) -> None:
        """Record that the model at ``index`` was given up, and where the request goes next."""
        self.failures.append(failure)
        entries = self.entries
        nxt = entries[index + 1].name if index + 1 < len(entries) else None
        reason = failure.reason
        emit(FallbackTaken(failure.model, nxt, reason))
        # Skipping a model whose breaker is open is routine while it stays open: the
        # transition itself was logged as a warning, so each skip is only DEBUG.
        if reason is FailureReason.CIRCUIT_OPEN:
            if _debug_enabled():
                logger.debug("model given up (%s); falling back to %r", failure, nxt)
            return
        log = logger.warning
        if nxt is None:
            log("model given up (%s); no model left", failure)
        else:
            log("model given up (%s); falling back to %r", failure, nxt)

    def error(self) -> AllModelsFailedError:
        """The error raised when no model answered."""
        deadline = bool(self.failures) and self.failures[-1].reason is (
            FailureReason.DEADLINE_EXCEEDED
        )
        err = AllModelsFailedError(self.failures, deadline_exceeded=deadline)
        errors = err.errors
        if errors:
            err.__cause__ = errors[-1]
        return err


class Engine:
    """Runs plans: tries each model in turn, with breaker admission and bounded retries."""

    __slots__ = ("clock", "emit", "random")

    def __init__(self, clock: Clock, random: Callable[[], float], emit: EventHook) -> None:
        self.clock = clock
        self.random = random
        self.emit = emit

    # -- shared bookkeeping ----------------------------------------------------------------

    def _failed(
        self,
        entry: ModelEntry,
        plan: Plan,
        admission: Admission,
        number: int,
        started: float,
        exc: BaseException,
        errors: list[ProviderError],
    ) -> float | ModelFailure:
        """Record a failed attempt; return the delay before retrying, or the model's failure.

        A `ConfigurationError` (a missing API key, say) is the caller's to fix, not an outage:
        it propagates at once, without retry, fallback or breaker count.
        """
        if isinstance(exc, ConfigurationError):
            entry.breaker.record_neutral(admission)
            raise exc
        now = self.clock.monotonic()
        error = classify_exception(exc, entry.classifier, entry.name, entry.provider.provider_name)
        entry.breaker.record(admission, error)
        errors.append(error)
        attempt = Attempt(entry.name, number, now - started, error)
        plan.attempts.append(attempt)
        self.emit(attempt)
        error_name = type(error).__name__
        step = next_step(
            entry.retry,
            number,
            error,
            plan.deadline - now,
            entry.breaker.state is _CLOSED and admission is Admission.ALLOWED,
            self.random(),
        )
        if isinstance(step, FailureReason):
            return ModelFailure(entry.name, step, tuple(errors))
        self.emit(RetryScheduled(entry.name, number, step, error_name))
        logger.info(
            "retrying model %r in %.2fs after attempt %d failed: %s: %s",
            entry.name,
            step,
            number,
            error_name,
            error,
        )
        return step

    def _succeeded(
        self, entry: ModelEntry, plan: Plan, admission: Admission, number: int, started: float
    ) -> None:
        duration = self.clock.monotonic() - started
        entry.breaker.record_success(admission)
        attempt = Attempt(entry.name, number, duration)
        plan.attempts.append(attempt)
        self.emit(attempt)

    def _timeout(self, plan: Plan) -> float | None:
        """The timeout for the next attempt, or None when the deadline has passed."""
        left = plan.deadline - self.clock.monotonic()
        if left <= 0:
            return None
        return left if left < plan.per_attempt else plan.per_attempt

    @staticmethod
    def _answer(entry: ModelEntry, plan: Plan, response: ChatResponse) -> ChatResponse:
        # Direct construction: dataclasses.replace costs several µs on the hot path.
        return ChatResponse(
            response.text,
            response.tool_calls,
            response.finish_reason,
            response.usage,
            entry.name,
            response.provider or entry.provider.provider_name,
            response.provider_model,
            False,
            tuple(plan.attempts),
            tuple([f.model for f in plan.failures]) if plan.failures else (),
        )

    # -- complete ----------------------------------------------------------------------------

    def run(self, plan: Plan) -> ChatResponse:
        """Serve the plan with blocking calls."""
        for index, entry in enumerate(plan.entries):
            outcome = self._run_model(entry, plan)
            if isinstance(outcome, ChatResponse):
                return outcome
            plan.give_up(index, outcome, self.emit)
            if outcome.reason is FailureReason.DEADLINE_EXCEEDED:
                break
        raise plan.error()

    def _run_model(self, entry: ModelEntry, plan: Plan) -> ChatResponse | ModelFailure:
        admission = entry.breaker.admit()
        if admission is _REJECTED:
            return ModelFailure(entry.name, FailureReason.CIRCUIT_OPEN)
        errors: list[ProviderError] = []
        number = 0
        while True:
            number += 1
            timeout = self._timeout(plan)
            if timeout is None:
                entry.breaker.record_neutral(admission)
                return ModelFailure(entry.name, FailureReason.DEADLINE_EXCEEDED, tuple(errors))
            started = self.clock.monotonic()
            try:
                response = entry.provider.complete(plan.request, timeout=timeout)
            except Exception as exc:
                step = self._failed(entry, plan, admission, number, started, exc, errors)
                if isinstance(step, ModelFailure):
                    return step
                self.clock.sleep(step)
                continue
            except BaseException:
                entry.breaker.record_neutral(admission)
                raise
            self._succeeded(entry, plan, admission, number, started)
            return self._answer(entry, plan, response)

    async def arun(self, plan: Plan) -> ChatResponse:
        """Serve the plan without blocking the event loop."""
        for index, entry in enumerate(plan.entries):
            outcome = await self._arun_model(entry, plan)
            if isinstance(outcome, ChatResponse):
                return outcome
            plan.give_up(index, outcome, self.emit)
            if outcome.reason is FailureReason.DEADLINE_EXCEEDED:
                break
        raise plan.error()

    async def _arun_model(self, entry: ModelEntry, plan: Plan) -> ChatResponse | ModelFailure:
        admission = entry.breaker.admit()
        if admission is _REJECTED:
            return ModelFailure(entry.name, FailureReason.CIRCUIT_OPEN)
        errors: list[ProviderError] = []
        number = 0
        while True:
            number += 1
            timeout = self._timeout(plan)
            if timeout is None:
                entry.breaker.record_neutral(admission)
                return ModelFailure(entry.name, FailureReason.DEADLINE_EXCEEDED, tuple(errors))
            started = self.clock.monotonic()
            try:
                response = await entry.provider.acomplete(plan.request, timeout=timeout)
            except Exception as exc:
                step = self._failed(entry, plan, admission, number, started, exc, errors)
                if isinstance(step, ModelFailure):
                    return step
                await self.clock.asleep(step)
                continue
            except BaseException:
                entry.breaker.record_neutral(admission)
                raise
            self._succeeded(entry, plan, admission, number, started)
            return self._answer(entry, plan, response)

    # -- stream ------------------------------------------------------------------------------

    def stream(self, plan: Plan, on_done: Callable[[ChatResponse], None]) -> Iterator[StreamChunk]:
        """Stream from the first model that yields a chunk; ``on_done`` gets the whole answer."""
        for index, entry in enumerate(plan.entries):
            opened = self._open_stream(entry, plan)
            if isinstance(opened, ModelFailure):
                plan.give_up(index, opened, self.emit)
                if opened.reason is FailureReason.DEADLINE_EXCEEDED:
                    break
                continue
            admission, number, started, iterator, first = opened
            acc = StreamAccumulator()
            name = entry.name
            try:
                chunk = first
                while chunk is not None:
                    acc.add(chunk)
                    if chunk.model != name:
                        chunk.model = name  # chunks are built fresh by the provider, for us
                    yield chunk
                    chunk = next(iterator, None)
            except GeneratorExit:
                entry.breaker.record_neutral(admission)
                _close(iterator)
                raise
            except Exception as exc:
                _close(iterator)
                self._interrupted(entry, plan, admission, number, started, exc, acc)
            self._succeeded(entry, plan, admission, number, started)
            on_done(self._answer(entry, plan, acc.response(provider=entry.provider.provider_name)))
            return
        raise plan.error()

    def _open_stream(
        self, entry: ModelEntry, plan: Plan
    ) -> tuple[Admission, int, float, Iterator[StreamChunk], StreamChunk | None] | ModelFailure:
        admission = entry.breaker.admit()
        if admission is _REJECTED:
            return ModelFailure(entry.name, FailureReason.CIRCUIT_OPEN)
        errors: list[ProviderError] = []
        number = 0
        while True:
            number += 1
            timeout = self._timeout(plan)
            if timeout is None:
                entry.breaker.record_neutral(admission)
                return ModelFailure(entry.name, FailureReason.DEADLINE_EXCEEDED, tuple(errors))
            started = self.clock.monotonic()
            iterator: Iterator[StreamChunk] | None = None
            try:
                iterator = iter(entry.provider.stream(plan.request, timeout=timeout))
                first = next(iterator, None)
            except Exception as exc:
                _close(iterator)
                step = self._failed(entry, plan, admission, number, started, exc, errors)
                if isinstance(step, ModelFailure):
                    return step
                self.clock.sleep(step)
                continue
            except BaseException:
                _close(iterator)
                entry.breaker.record_neutral(admission)
                raise
            return admission, number, started, iterator, first

    def _interrupted(
        self,
        entry: ModelEntry,
        plan: Plan,
        admission: Admission,
        number: int,
        started: float,
        exc: Exception,
        acc: StreamAccumulator,
    ) -> NoReturn:
        now = self.clock.monotonic()
        error = classify_exception(exc, entry.classifier, entry.name, entry.provider.provider_name)
        entry.breaker.record(admission, error)
        attempt = Attempt(entry.name, number, now - started, error)
        plan.attempts.append(attempt)
        self.emit(attempt)
        logger.warning("stream from model %r interrupted mid-answer: %s", entry.name, error)
        raise StreamInterruptedError(entry.name, acc.text, error) from error

    async def astream(
        self, plan: Plan, on_done: Callable[[ChatResponse], None]
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of `stream`."""
        for index, entry in enumerate(plan.entries):
            opened = await self._aopen_stream(entry, plan)
            if isinstance(opened, ModelFailure):
                plan.give_up(index, opened, self.emit)
                if opened.reason is FailureReason.DEADLINE_EXCEEDED:
                    break
                continue
            admission, number, started, iterator, first = opened
            acc = StreamAccumulator()
            name = entry.name
            try:
                chunk = first
                while chunk is not None:
                    acc.add(chunk)
                    if chunk.model != name:
                        chunk.model = name  # chunks are built fresh by the provider, for us
                    yield chunk
                    chunk = await anext(iterator, None)
            except GeneratorExit:
                entry.breaker.record_neutral(admission)
                await _aclose(iterator)
                raise
            except Exception as exc:
                await _aclose(iterator)
                self._interrupted(entry, plan, admission, number, started, exc, acc)
            self._succeeded(entry, plan, admission, number, started)
            on_done(self._answer(entry, plan, acc.response(provider=entry.provider.provider_name)))
            return
        raise plan.error()

    async def _aopen_stream(
        self, entry: ModelEntry, plan: Plan
    ) -> (
        tuple[Admission, int, float, AsyncIterator[StreamChunk], StreamChunk | None] | ModelFailure
    ):
        admission = entry.breaker.admit()
        if admission is _REJECTED:
            return ModelFailure(entry.name, FailureReason.CIRCUIT_OPEN)
        errors: list[ProviderError] = []
        number = 0
        while True:
            number += 1
            timeout = self._timeout(plan)
            if timeout is None:
                entry.breaker.record_neutral(admission)
                return ModelFailure(entry.name, FailureReason.DEADLINE_EXCEEDED, tuple(errors))
            started = self.clock.monotonic()
            iterator: AsyncIterator[StreamChunk] | None = None
            try:
                iterator = aiter(entry.provider.astream(plan.request, timeout=timeout))
                first = await anext(iterator, None)
            except Exception as exc:
                await _aclose(iterator)
                step = self._failed(entry, plan, admission, number, started, exc, errors)
                if isinstance(step, ModelFailure):
                    return step
                await self.clock.asleep(step)
                continue
            except BaseException:
                await _aclose(iterator)
                entry.breaker.record_neutral(admission)
                raise
            return admission, number, started, iterator, first


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def _aclose(iterator: object) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
