"""For framework adapters: which manager an adapter uses, the one given or one built from its
models, by one set of rules.

Both adapters (``langchain_reliable_llm.ReliableChatModel`` and
``llama_index.llms.reliable.ReliableLLM``) take ``manager=`` or ``models=``; with ``models=``
the first model (or ``model=``) is tried first and the others follow in order unless
``fallbacks=`` says otherwise, and the same option names configure the manager built. The
rules live here, once, so the two cannot drift apart; this module imports no framework.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Self

from reliable_llm import (
    AllModelsFailedError,
    Attempt,
    BreakerPolicy,
    ChatResponse,
    ConfigurationError,
    LLMManager,
    ReliableLLMError,
    UnknownModelError,
)
from reliable_llm._observe import outcome

__all__ = [
    "OWN_MANAGER_OPTIONS",
    "AdapterCore",
    "attach_manager",
    "attempt_records",
    "check_option_names",
    "failure_trace_attributes",
    "manager_arguments",
    "request_route",
    "response_trace_attributes",
    "trace_attributes",
]

#: Options that configure a manager built from ``models=`` (not a shared one).
OWN_MANAGER_OPTIONS = (
    "max_retries",
    "enable_caching",
    "retry",
    "breaker",
    "failure_threshold",
    "recovery_timeout",
    "cache_policy",
    "timeouts",
    "clock",
    "model_metadata",
)
# Managers built from models=, recognised when a framework rebuilds an instance from its fields.
_BUILT: weakref.WeakSet[LLMManager] = weakref.WeakSet()


def check_option_names(owner: str, given: Iterable[str], known: Collection[str]) -> None:
    """Refuse option names ``owner`` does not know, suggesting the closest known one.

    Raises:
        ConfigurationError: A name is not in ``known`` (a typo would otherwise be ignored).
    """
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigurationError(f"{owner} got unknown options: {', '.join(hints)}")


def attach_manager(
    manager: LLMManager | None,
    models: Mapping[str, Any] | None,
    *,
    model: str | None,
    fallbacks: Sequence[str] | None,
    options: Mapping[str, Any],
    wrap: Callable[[Any], Any],
) -> LLMManager:
    """Return the manager to serve with: ``manager``, or a new one serving ``models``.

    An instance rebuilt from another's fields (as LangChain's configurable fields do) gets
    both the models and the manager built for them, and keeps sharing that manager.

    Args:
        manager: A shared manager, used as configured.
        models: Models for a new manager: providers, callables, ``"<preset>:<model>"``
            strings or framework models (``wrap`` turns those into providers).
        model: The model tried first.
        fallbacks: The models tried after it (default with ``models=``: the others, in order).
        options: The given (non-None) `OWN_MANAGER_OPTIONS`.
        wrap: Turns one value of ``models`` into something ``register_model`` accepts.

    Raises:
        ConfigurationError: Neither or both of ``manager`` and ``models``, own-manager options
            with a shared manager, or an invalid model or option.
        UnknownModelError: ``model`` or a fallback is not registered.
    """
    if manager is not None and manager in _BUILT:
        if models is None or set(models) != set(manager.list_models()):
            manager = None
    elif manager is not None:
        if models is not None:
            raise ConfigurationError(
                "pass either manager=LLMManager(...) or models={name: model, ...}, not both"
            )
        if options:
            raise ConfigurationError(
                f"{sorted(options)} configure a manager built from models=; "
                "with manager= set them on that manager instead"
            )
    if manager is None:
        if models is None:
            raise ConfigurationError(
                "pass either manager=LLMManager(...) or models={name: model, ...}, not both"
            )
        manager = _build(models, model, fallbacks, options, wrap)
        _BUILT.add(manager)
    registered = manager.list_models()
    for name in [model, *(fallbacks or ())]:
        if name is not None and name not in registered:
            raise UnknownModelError(name, registered)
    return manager


class AdapterCore:
    """The manager behind an adapter instance, and the route it was set up for.

    Kept outside the frameworks' pydantic fields; each adapter subclasses it to add its own
    per-instance caches. ``per_call_route`` says whether each call names its model and
    fallbacks (an instance around a shared manager with its own route) or uses the manager's
    precomputed route; ``model`` and ``fallbacks`` are the instance's fields that route was
    set up for.
    """

    __slots__ = ("fallbacks", "manager", "model", "per_call_route")

    def __init__(
        self,
        manager: LLMManager,
        *,
        per_call_route: bool,
        model: str | None = None,
        fallbacks: list[str] | None = None,
    ) -> None:
        self.manager = manager
        self.per_call_route = per_call_route
        self.model = model
        self.fallbacks = fallbacks

    @classmethod
    def build(
        cls,
        manager: LLMManager | None,
        models: Mapping[str, Any] | None,
        *,
        model: str | None,
        fallbacks: list[str] | None,
        options: Mapping[str, Any],
        wrap: Callable[[Any], Any],
    ) -> Self:
        """Use ``manager`` as is, or build one from ``models`` (see `attach_manager`).

        Raises:
            ConfigurationError: Neither or both of ``manager`` and ``models``, own-manager
                options with an existing manager, or an invalid model or option.
            UnknownModelError: ``model`` or a fallback is not registered.
        """
        own = manager is None or models is not None
        served = attach_manager(
            manager, models, model=model, fallbacks=fallbacks, options=options, wrap=wrap
        )
        per_call = not own and (model is not None or fallbacks is not None)
        return cls(served, per_call_route=per_call, model=model, fallbacks=fallbacks)

    def per_call(self, model: str | None, fallbacks: list[str] | None) -> bool:
        """Whether a call with these fields must name its route (they changed, e.g. on a copy)."""
        return self.per_call_route or model is not self.model or fallbacks is not self.fallbacks


def manager_arguments(options: Mapping[str, Any]) -> dict[str, Any]:
    """`LLMManager` keyword arguments for the given own-manager options.

    Raises:
        ConfigurationError: ``failure_threshold`` / ``recovery_timeout`` next to ``breaker``.
    """
    arguments = {
        name: options[name]
        for name in ("max_retries", "enable_caching", "retry", "breaker", "timeouts", "clock")
        if name in options
    }
    if "cache_policy" in options:
        arguments["cache"] = options["cache_policy"]
    shortcuts = {k: options[k] for k in ("failure_threshold", "recovery_timeout") if k in options}
    if shortcuts:
        if "breaker" in options:
            raise ConfigurationError(
                f"{sorted(shortcuts)} conflict with breaker=; set them on the BreakerPolicy"
            )
        arguments["breaker"] = BreakerPolicy(**shortcuts)
    return arguments


def _build(
    models: Mapping[str, Any],
    model: str | None,
    fallbacks: Sequence[str] | None,
    options: Mapping[str, Any],
    wrap: Callable[[Any], Any],
) -> LLMManager:
    if not isinstance(models, Mapping) or not models:
        raise ConfigurationError(
            "models= must map at least one name to a model, e.g. {'primary': 'openai:gpt-4o-mini'}"
        )
    metadata: Mapping[str, Mapping[str, Any]] = options.get("model_metadata") or {}
    unknown = sorted(set(metadata) - set(models))
    if unknown:
        raise ConfigurationError(f"model_metadata names models that are not in models: {unknown}")
    manager = LLMManager(**manager_arguments(options))
    for name, value in models.items():
        manager.register_model(name, wrap(value), metadata.get(name))
    first = model if model is not None else next(iter(models))
    if first not in models:
        raise UnknownModelError(first, list(models))
    manager.set_active_model(first)
    chain = list(fallbacks) if fallbacks is not None else list(models)
    manager.set_fallback_chain([n for n in chain if n != first])
    return manager


def attempt_records(response: ChatResponse) -> list[dict[str, Any]]:
    """Every upstream call of a response as JSON-compatible dicts, as both adapters report
    them under ``attempts``."""
    return [
        {
            "model": a.model,
            "number": a.number,
            "duration": a.duration,
            "error": None if a.error is None else type(a.error).__name__,
            "message": None if a.error is None else str(a.error),
        }
        for a in response.attempts
    ]


def request_route(
    manager: LLMManager, model: str | None, fallbacks: Sequence[str] | None
) -> list[str]:
    """The registered names a request with these per-call overrides tries, in order (empty
    when the overrides are invalid: the request itself then says why)."""
    if model is None and fallbacks is None:
        return list(manager.route)
    try:
        return [entry.name for entry in manager._registry.route_for(model, fallbacks)]
    except ReliableLLMError:
        return []


def trace_attributes(
    *,
    answered_by: str | None,
    cached: bool,
    attempts: int,
    retries: int,
    given_up: Sequence[str],
    reasons: Sequence[str],
    route: Sequence[str] | None = None,
    cost: float | None = None,
    cancelled: bool = False,
) -> dict[str, Any]:
    """One request as both adapters add it to their framework's trace (LangChain run
    metadata, LlamaIndex instrumentation events): JSON values under the names of the
    OpenTelemetry request span's attributes (``reliable_llm.otel``).

    Keys: ``reliable_llm.outcome`` (``"success"``, ``"failure"`` or ``"cancelled"``),
    ``reliable_llm.response.model`` (the registered model that answered; None on failure),
    ``reliable_llm.route`` (when known), ``reliable_llm.cache.hit``,
    ``reliable_llm.attempts`` and ``reliable_llm.retries`` (upstream calls, and those that
    were retries), ``reliable_llm.fallback.models`` and ``reliable_llm.fallback.reasons``
    (the models given up, in order, and why: `FailureReason` values), and
    ``reliable_llm.cost`` (USD, when the answering model has prices).
    """
    attributes: dict[str, Any] = {
        "reliable_llm.outcome": outcome(answered_by, cancelled),
        "reliable_llm.response.model": answered_by,
    }
    if route is not None:
        attributes["reliable_llm.route"] = list(route)
    attributes["reliable_llm.cache.hit"] = cached
    attributes["reliable_llm.attempts"] = attempts
    attributes["reliable_llm.retries"] = retries
    attributes["reliable_llm.fallback.models"] = list(given_up)
    attributes["reliable_llm.fallback.reasons"] = list(reasons)
    if cost is not None:
        attributes["reliable_llm.cost"] = cost
    return attributes


def response_trace_attributes(
    response: ChatResponse, route: Sequence[str] | None = None
) -> dict[str, Any]:
    """`trace_attributes` of an answered request."""
    return trace_attributes(
        answered_by=response.model,
        cached=response.cached,
        attempts=len(response.attempts),
        retries=_retries(response.attempts),
        given_up=response.fallback_from,
        reasons=response.fallback_reasons,
        route=route,
        cost=response.cost,
    )


def failure_trace_attributes(
    error: AllModelsFailedError, route: Sequence[str] | None = None
) -> dict[str, Any]:
    """`trace_attributes` of a request no model answered (one attempt per error its models
    raised; a model skipped for its open breaker made none)."""
    failures = error.failures
    return trace_attributes(
        answered_by=None,
        cached=False,
        attempts=sum(len(f.errors) for f in failures),
        retries=sum(max(len(f.errors) - 1, 0) for f in failures),
        given_up=[f.model for f in failures],
        reasons=[str(f.reason) for f in failures],
        route=route,
    )


def _retries(attempts: Sequence[Attempt]) -> int:
    return sum(1 for a in attempts if a.number > 1)
