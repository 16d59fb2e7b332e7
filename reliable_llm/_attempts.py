"""The attempts of one request on one model: the one per-model attempt loop's state.

`ModelAttempts` owns breaker admission, attempt numbering, the errors seen, the deadline of
each attempt and the release of what it holds. The sync, async and streaming drivers in
`_engine` are thin loops over it (the shape of tenacity's ``iter()`` and stamina's retry
context):

    tries = ModelAttempts(engine, entry, plan, entry.breaker.admit(plan.per_attempt))
    try:
        while (timeout := tries.start()) is not None:
            try:
                response = <call the provider within timeout>
            except Exception as exc:
                delay = tries.failed(exc)
                if delay is None:
                    break
                <sleep delay>
            else:
                return tries.succeeded(response)  # None: a validator rejected the answer
    finally:
        tries.release()

`release` runs however the loop ends (return, error, cancellation, an abandoned stream,
``KeyboardInterrupt``): an attempt still in flight is recorded as cancelled and a half-open
trial that got no verdict frees its slot.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NoReturn

from reliable_llm._breaker import Admission, BreakerState, Ticket, Trial
from reliable_llm._capacity import at_capacity, sibling_left
from reliable_llm._classify import classify_exception
from reliable_llm._decisions import next_step
from reliable_llm._errors import (
    ConfigurationError,
    FailureReason,
    InvalidResponseError,
    ModelFailure,
    ProviderError,
    StreamInterruptedError,
)
from reliable_llm._events import RetryScheduled
from reliable_llm._gate import CapacityExceeded
from reliable_llm._types import Attempt, ChatResponse
from reliable_llm._validation import run_validators

if TYPE_CHECKING:
    from reliable_llm._engine import Engine
    from reliable_llm._plan import Plan
    from reliable_llm._registry import ModelEntry
    from reliable_llm._tracing import AttemptSpan

__all__ = ["ModelAttempts"]

logger = logging.getLogger("reliable_llm")
_ALLOWED = Admission.ALLOWED
_CLOSED = BreakerState.CLOSED
_HANDED_OVER = FailureReason.HANDED_OVER
_INVALID = FailureReason.INVALID_RESPONSE


class ModelAttempts:
    """One request's admitted attempts on one model (see the module docstring for the loop).

    ``failure`` is set once the model is given up, when `start` or `failed` says to stop.
    """

    __slots__ = (
        "admission",
        "engine",
        "entry",
        "errors",
        "failure",
        "first_chunk",
        "in_flight",
        "number",
        "plan",
        "provider",
        "span",
        "started",
    )

    def __init__(self, engine: Engine, entry: ModelEntry, plan: Plan, admission: Ticket) -> None:
        self.engine = engine
        self.entry = entry
        self.plan = plan
        self.admission = admission  # from entry.breaker.admit(); never REJECTED
        self.number = 0
        self.started = 0.0
        self.in_flight = False
        self.errors: list[ProviderError] = []
        self.failure: ModelFailure | None = None
        self.first_chunk: float | None = None  # set by the stream drivers once a stream opens
        # What the drivers call: the model's provider, or under a tracer the same provider
        # with each call made inside the current attempt's span (`span`).
        trace = plan.trace
        self.span: AttemptSpan | None = None
        self.provider = entry.provider if trace is None else trace.provider(entry.provider, self)
        if entry.budget:
            entry.budget.deposit()  # one request to this model, for its retry budget

    def start(self) -> float | None:
        """Begin the next attempt: its timeout in seconds, or None when the deadline passed."""
        plan = self.plan
        now = self.engine.clock.monotonic()
        left = plan.deadline - now
        if left <= 0:
            self.failure = ModelFailure(
                self.entry.name, FailureReason.DEADLINE_EXCEEDED, tuple(self.errors)
            )
            return None
        self.number += 1
        self.started = now
        self.in_flight = True
        if plan.trace is not None:
            self.span = plan.trace.attempt(self)
        return left if left < plan.per_attempt else plan.per_attempt

    def chunk_timeout(self) -> float:
        """Seconds the next chunk of a started stream may take: the idle bound, within the
        request's deadline.

        Raises:
            TimeoutError: The request's deadline has passed.
        """
        plan = self.plan
        left = plan.deadline - self.engine.clock.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline passed while streaming")
        return left if left < plan.stream_idle else plan.stream_idle

    def _classify(self, exc: Exception) -> ProviderError:
        entry = self.entry
        try:
            return classify_exception(
                exc, entry.classifier, entry.name, entry.provider.provider_name
            )
        except Exception as bug:
            raise ConfigurationError(
                f"classify_error of model {entry.name!r} raised {type(bug).__name__}: {bug} "
                f"while classifying {type(exc).__name__}; it must return a ProviderError or None"
            ) from bug

    def _record(self, error: ProviderError) -> None:
        engine = self.engine
        self.in_flight = False
        started = self.started
        attempt = Attempt(
            self.entry.name, self.number, engine.clock.monotonic() - started, error, False, started
        )
        self.entry.breaker.record(self.admission, error, attempt)
        self.errors.append(error)
        self.plan.attempts.append(attempt)
        if self.span is not None:
            self._end_span(attempt)
        engine.emit(attempt)

    def _end_span(
        self,
        attempt: Attempt | None,
        response: ChatResponse | None = None,
        error: BaseException | None = None,
    ) -> None:
        span = self.span
        assert span is not None
        self.span = None
        span.end(attempt, response, error)

    def failed(self, exc: Exception) -> float | None:
        """Record the failed attempt: the seconds to wait before the next, or None to stop.

        Raises:
            ConfigurationError: ``exc`` is one (our caller's mistake, not the model's: no
                retry, no fallback, no breaker count), or the model's ``classify_error`` failed.
        """
        if isinstance(exc, ConfigurationError | UnicodeEncodeError):
            self.in_flight = False  # never a call the model could answer: not an attempt
            local = _local(exc)
            if self.span is not None:
                self._end_span(None, None, local)
            raise local
        if type(exc) is CapacityExceeded:  # a deployment's own limit: nothing was sent
            return at_capacity(self, exc)
        error = self._classify(exc)
        self._record(error)
        entry = self.entry
        engine = self.engine
        plan = self.plan
        now = engine.clock.monotonic()
        step = next_step(
            entry.retry,
            self.number,
            error,
            plan.deadline - now,
            entry.breaker.state is _CLOSED and self.admission is _ALLOWED,
            engine.random(),
            now - self.started,
            entry is not plan.entries[-1],
            entry.budget,
        )
        if isinstance(step, FailureReason):
            self.failure = ModelFailure(entry.name, step, tuple(self.errors))
            return None
        if entry.member_of is not None and sibling_left(entry, plan.entries, now):
            # One deployment of a group failed: a sibling answers now, without the backoff
            # (the last deployment standing keeps its retries).
            self.failure = ModelFailure(entry.name, FailureReason.HANDED_OVER, tuple(self.errors))
            return None
        if entry.retry.hand_over and _healthy_after(entry, plan):
            # The retry would wait out a backoff on a failing model while a healthy one is
            # next: hand the request over now (the last model standing keeps its backoff).
            self.failure = ModelFailure(entry.name, _HANDED_OVER, tuple(self.errors))
            return None
        error_name = type(error).__name__
        engine.emit(RetryScheduled(entry.name, self.number, step, error_name))
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "retrying model %r in %.2fs after attempt %d failed: %s: %s",
                entry.name,
                step,
                self.number,
                error_name,
                error,
            )
        return step

    def succeeded(self, response: ChatResponse) -> ChatResponse | None:
        """Record the successful attempt; the response as the caller gets it.

        None when a validator (the model's, then the request's) rejected the answer: the
        attempt is recorded as failed with the `InvalidResponseError` and ``failure`` says
        why the model is given up.

        Raises:
            ConfigurationError: A validator raised something other than
                `InvalidResponseError` (a bug in the validator).
        """
        entry = self.entry
        engine = self.engine
        plan = self.plan
        if entry.validators or plan.validators:
            rejection = self._validate(response)
            if rejection is not None:
                self._reject(rejection)
                return None
        self.in_flight = False
        started = self.started
        attempt = Attempt(
            entry.name,
            self.number,
            engine.clock.monotonic() - started,
            None,
            False,
            started,
            self.first_chunk,
        )
        entry.breaker.record_success(self.admission, attempt)
        plan.attempts.append(attempt)
        engine.emit(attempt)
        prices = entry.prices
        # Direct construction: dataclasses.replace costs several µs on the hot path.
        answer = ChatResponse(
            response.text,
            response.tool_calls,
            response.finish_reason,
            response.usage,
            entry.name,
            response.provider or entry.provider.provider_name,
            response.provider_model,
            False,
            tuple(plan.attempts),
            tuple(plan.given_up) if plan.given_up else (),
            None if prices is None else prices.cost(response.usage),
            response.response_id,
            tuple([str(f.reason) for f in plan.failures]) if plan.given_up else (),
            response.reasoning,
            plan.changes,
        )
        if self.span is not None:
            self._end_span(attempt, answer)
        return answer

    def _validate(self, response: ChatResponse) -> InvalidResponseError | None:
        entry = self.entry
        # Validators see the answer as the caller would: with the registered model's name.
        answer = ChatResponse(
            response.text,
            response.tool_calls,
            response.finish_reason,
            response.usage,
            entry.name,
            response.provider or entry.provider.provider_name,
            response.provider_model,
            response_id=response.response_id,
        )
        rejection = run_validators(entry.validators, answer)
        if rejection is None:
            rejection = run_validators(self.plan.validators, answer)
        return rejection

    def _reject(self, rejection: InvalidResponseError) -> None:
        entry = self.entry
        if rejection.model is None:
            rejection.model = entry.name
        if rejection.provider is None:
            rejection.provider = entry.provider.provider_name
        self._record(rejection)  # breaker neutral unless the validator says otherwise
        self.failure = ModelFailure(entry.name, _INVALID, tuple(self.errors))
        logger.info("answer of model %r rejected: %s", entry.name, rejection)

    def rejected_stream(self, text: str) -> NoReturn:
        """Raise for a streamed answer that a validator rejected after its chunks reached the
        caller (the request cannot silently switch models mid-answer).

        Raises:
            StreamInterruptedError: Always; its cause is the `InvalidResponseError`.
        """
        rejection = self.errors[-1]
        raise StreamInterruptedError(self.entry.name, text, rejection) from rejection

    def interrupted(self, exc: Exception, partial_text: str) -> NoReturn:
        """Record a stream that failed after text reached the caller, and raise for it.

        Raises:
            StreamInterruptedError: Always, with the partial text and the classified cause.
        """
        if isinstance(exc, ConfigurationError | UnicodeEncodeError):
            self.in_flight = False
            local = _local(exc)
            if self.span is not None:
                self._end_span(None, None, local)
            raise local
        error = self._classify(exc)
        self._record(error)
        logger.warning("stream from model %r interrupted mid-answer: %s", self.entry.name, error)
        raise StreamInterruptedError(self.entry.name, partial_text, error) from error

    def release(self) -> None:
        """However the attempts ended: record an attempt left in flight as cancelled and free
        a half-open trial that got no verdict (a no-op for a trial already decided)."""
        if self.in_flight:
            self.in_flight = False
            attempt = Attempt(
                self.entry.name,
                self.number,
                self.engine.clock.monotonic() - self.started,
                None,
                True,
                self.started,
            )
            self.plan.attempts.append(attempt)
            if self.span is not None:
                self._end_span(attempt)
            self.engine.emit(attempt)
        admission = self.admission
        if type(admission) is Trial:
            self.entry.breaker.record_neutral(admission)


def _healthy_after(entry: ModelEntry, plan: Plan) -> bool:
    """Whether a model after ``entry`` in the plan's route has a closed breaker."""
    entries = plan.entries
    return any(later.breaker.state is _CLOSED for later in entries[entries.index(entry) + 1 :])


def _local(exc: Exception) -> ConfigurationError:
    """The caller's mistake as a `ConfigurationError` (an unencodable request, say)."""
    if isinstance(exc, ConfigurationError):
        return exc
    error = ConfigurationError(
        f"the request cannot be encoded for the model ({type(exc).__name__}: {exc}); "
        "remove unpaired surrogates from every text, parameter and tool definition"
    )
    error.__cause__ = exc
    return error
