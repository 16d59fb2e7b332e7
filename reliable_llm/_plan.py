"""A request's plan: route, request, deadlines, cache key and TTL, built in one place.

`plan_call` validates what a caller passed and builds the `Plan` every layer reads; the
plan then records the request's attempts and the models given up.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reliable_llm._adapt import Unsupported, adapt
from reliable_llm._cache import cache_key, prompt_cache_key
from reliable_llm._content import ContentChange
from reliable_llm._errors import (
    AllModelsFailedError,
    ConfigurationError,
    FailureReason,
    LocalRateLimitError,
    ModelFailure,
)
from reliable_llm._events import EventHook, FallbackTaken
from reliable_llm._policies import seconds_override
from reliable_llm._registry import ModelEntry, expand
from reliable_llm._request import MessagesInput, build_request, check_flag, check_prompt
from reliable_llm._types import Attempt, ChatRequest, Message
from reliable_llm._validation import NO_VALIDATORS, Validator, as_validators

if TYPE_CHECKING:
    from reliable_llm._manager import LLMManager
    from reliable_llm._tracing import RequestTrace

__all__ = ["Plan", "plan_call"]

logger = logging.getLogger("reliable_llm")
_info_enabled = functools.partial(logger.isEnabledFor, logging.INFO)
_DEADLINE = FailureReason.DEADLINE_EXCEEDED
_AT_LIMIT = (FailureReason.RATE_LIMITED_LOCALLY, FailureReason.BULKHEAD_FULL)


class Plan:
    """One request: its route, request, deadlines, cache key and TTL, and its record.

    Built once per request by `LLMManager`; every layer reads it. Times are seconds on the
    manager's clock; ``key`` is None when the request is not cached. ``template`` is the
    route as registered (a deployment group unexpanded): what identical requests share.
    """

    __slots__ = (
        "_prompt",
        "_request",
        "at_limit",
        "attempts",
        "changes",
        "deadline",
        "entries",
        "failures",
        "fitted",
        "given_up",
        "has_parts",
        "key",
        "per_attempt",
        "regroups",
        "requested",
        "resume",
        "started",
        "stream_idle",
        "template",
        "total",
        "trace",
        "ttl",
    )

    #: This request's own validators, run after each model's (see `_CheckedPlan`).
    validators: tuple[Validator, ...] = NO_VALIDATORS

    def __init__(
        self,
        entries: tuple[ModelEntry, ...],
        request: ChatRequest | str,
        started: float,
        total: float,
        per_attempt: float,
        stream_idle: float,
        key: str | None,
        ttl: float | None,
        template: tuple[ModelEntry, ...],
    ) -> None:
        self.requested = entries[0].route_name
        self.entries = entries
        self.template = template
        # A bare prompt (already checked) becomes a request only if the cache cannot answer.
        if type(request) is str:
            self._prompt: str | None = request
            self._request: ChatRequest | None = None
        else:
            self._prompt = None
            self._request = request  # type: ignore[assignment]
        self.started = started
        self.total = total
        self.deadline = started + total
        self.per_attempt = per_attempt
        self.stream_idle = stream_idle
        self.key = key
        self.ttl = ttl
        self.attempts: list[Attempt] = []
        self.failures: list[ModelFailure] = []
        self.given_up: list[str] = []  # the failures' model names, for each response
        # `at_limit` stays unset (no per-request cost) until a deployment refuses a call.
        # Content parts beyond plain text: then each model gets the request fitted to it.
        self.has_parts = False
        self.changes: tuple[ContentChange, ...] = ()
        # The request fitted to the model being tried: set by `fit` before any attempt reads
        # it, and only then (a text-only request never stores it).
        self.fitted: ChatRequest
        self.trace: RequestTrace | None = None  # set by a tracer (`_tracing`) while it runs
        # Set only by `regroup` (a group's waiter going on in a new order), read by getattr.
        self.resume: tuple[ModelEntry, ...] | None
        self.regroups: int

    @property
    def route(self) -> tuple[str, ...]:
        """The registered names of the route, in order."""
        return tuple([entry.name for entry in self.entries])

    @property
    def request(self) -> ChatRequest:
        """The request sent to every model of the route."""
        request = self._request
        if request is None:
            assert self._prompt is not None
            request = self._request = ChatRequest((Message("user", self._prompt),))
        return request

    def fit(self, entry: ModelEntry) -> ModelFailure | None:
        """Fit the request's content to ``entry``'s model before its attempts
        (`reliable_llm._adapt`): ``fitted`` is then the request it gets, and ``changes`` say
        what was changed. Returns its ``unsupported_input`` failure when it cannot take the
        request in any form (the model is not called; its breaker is not touched).
        """
        request = self.request
        try:
            fitted, changes = adapt(
                request, entry.name, entry.capabilities, entry.provider.provider_name
            )
        except Unsupported as exc:
            detail = f"the request carries {exc}"
            self.changes += (ContentChange(entry.name, "skipped", "input", detail),)
            return ModelFailure(entry.name, FailureReason.UNSUPPORTED_INPUT, (), detail)
        if changes:
            self.changes += changes
        self.fitted = fitted
        return None

    def give_up(self, index: int, failure: ModelFailure, emit: EventHook) -> bool:
        """Record that the model at ``index`` was given up; True when the route ends here."""
        self.failures.append(failure)
        self.given_up.append(failure.model)
        entries = self.entries
        reason = failure.reason
        entry = entries[index]
        resume: tuple[ModelEntry, ...] | None = None
        if failure is entry.circuit_open:
            # Skipped while its breaker is open, the common give-up during an outage: the
            # event (immutable) is built once per next model and reused.
            nxt = entries[index + 1].name if index + 1 < len(entries) else None
            event = entry.open_events.get(nxt)
            if event is None:
                event = entry.open_events[nxt] = FallbackTaken(failure.model, nxt, reason)
            emit(event)
        else:
            if reason in _AT_LIMIT:  # a group's waiter may go on in a new order (`regrouped`)
                resume = getattr(self, "resume", None)
            if resume is not None:
                nxt = resume[0].name
            else:
                nxt = entries[index + 1].name if index + 1 < len(entries) else None
            emit(FallbackTaken(failure.model, nxt, reason))
        # Routine while a model is down (the breaker's own transitions are warnings, and a
        # failed request is raised to its caller): logged at INFO, built only when enabled.
        if _info_enabled():
            if nxt is None:
                logger.info("model given up (%s); no model left", failure)
            else:
                logger.info("model given up (%s); falling back to %r", failure, nxt)
        return reason is _DEADLINE or resume is not None

    def regroup(self, entries: tuple[ModelEntry, ...]) -> None:
        """Go on, once the model being tried is given up, with ``entries`` as the rest of the
        route: a deployment group's new order for a request that waited for room in it."""
        self.resume = entries
        self.regroups = getattr(self, "regroups", 0) + 1

    def regrouped(self) -> bool:
        """Whether the route goes on in a new order (see `regroup`); it is then the route."""
        resume: tuple[ModelEntry, ...] | None = getattr(self, "resume", None)
        if resume is None:
            return False
        self.resume = None
        self.entries = resume
        return True

    def note_capacity(self, limit: str, ready_at: float, now: float) -> None:
        """A deployment refused a call at its client-side ``limit`` at ``now``; it has room
        at ``ready_at`` (clock seconds). The soonest of these is kept for the error."""
        at_limit: tuple[str, float, float] | None = getattr(self, "at_limit", None)
        if at_limit is None or ready_at < at_limit[1]:
            self.at_limit = (limit, ready_at, now)
        else:
            self.at_limit = (at_limit[0], at_limit[1], now)

    def error(self) -> AllModelsFailedError:
        """The error raised when no model answered.

        `LocalRateLimitError` when the last model was given up at a client-side limit.
        """
        failures = self.failures
        # (limit, clock time it has room, when last refused) of the soonest refusal, if any.
        at_limit: tuple[str, float, float] | None = getattr(self, "at_limit", None)
        if at_limit is not None and failures and failures[-1].reason in _AT_LIMIT:
            limit, ready_at, now = at_limit
            err: AllModelsFailedError = LocalRateLimitError(
                failures, limit=limit, retry_in=max(ready_at - now, 0.0)
            )
        else:
            deadline = bool(failures) and failures[-1].reason is _DEADLINE
            err = AllModelsFailedError(failures, deadline_exceeded=deadline)
        for failure in reversed(failures):  # the cause: the last provider error seen, if any
            if failure.errors:
                err.__cause__ = failure.errors[-1]
                break
        return err


class _CheckedPlan(Plan):
    """A plan with validators of its own (most have none: `Plan` keeps the shared default,
    so a plan without them costs nothing more to build)."""

    __slots__ = ("validators",)


def plan_call(
    manager: LLMManager,
    messages: MessagesInput,
    params: dict[str, Any],
    model: str | None,
    fallback_chain: Sequence[str] | None,
    use_cache: bool | None,
    cache_ttl: float | None,
    timeout: float | None,
) -> Plan:
    """Validate one call of ``manager`` and build its plan.

    The one place a plan is built; every driver serves what it returns.

    Raises:
        ConfigurationError: A message, parameter or override is invalid, or a model of the
            route cannot take the request.
        UnknownModelError: An override names an unregistered model.
    """
    registry = manager._registry
    if model is None and fallback_chain is None and registry.route:
        route = template = registry.route
    elif model is None and fallback_chain is None and registry.grouped is not None:
        template, order = registry.grouped  # a deployment group: its order for this request
        route = order()
    else:
        template = registry.template_for(model, fallback_chain)
        route = expand(template)
    if use_cache is not None and use_cache is not True:
        check_flag("use_cache", use_cache)
    cached = use_cache is not False and manager.enable_caching
    checks = None
    if not params and type(messages) is str:
        # The hot path: one user prompt, no parameters (`generate`), keyed without the
        # general canonical encoder.
        check_prompt(messages)
        has_parts = False
        request: ChatRequest | str = messages
        key = prompt_cache_key(route[0].route_name, messages) if cached else None
    else:
        if "validators" in params:  # ours, not a generation parameter
            checks = as_validators("validators", params.pop("validators"))
        request = build_request(messages, params)
        has_parts = False
        for message in request.messages:
            if type(message.content) is not str:
                has_parts = True
                break
        key = cache_key(route[0].route_name, request) if cached else None
        for entry in route:  # a fallback that cannot take the request fails now, not later
            check = getattr(entry.provider, "check_request", None)
            if check is not None:
                try:
                    check(request)
                except ConfigurationError as exc:
                    raise ConfigurationError(f"model {entry.name!r}: {exc}") from None
    timeouts = manager.timeouts
    total = timeouts.total if timeout is None else seconds_override("timeout", timeout)
    if cache_ttl is None:
        ttl = manager.cache_policy.ttl
    else:
        ttl = seconds_override("cache_ttl", cache_ttl)
    plan = (Plan if checks is None else _CheckedPlan)(
        route,
        request,
        manager.clock.monotonic(),
        total,  # type: ignore[arg-type]
        timeouts.per_attempt,
        timeouts.stream_idle,
        key,
        ttl,
        template,
    )
    if has_parts:
        plan.has_parts = True
    if checks is not None:
        plan.validators = checks  # type: ignore[misc]  # a _CheckedPlan's own slot
    return plan
