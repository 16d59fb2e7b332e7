"""Which manager a `ReliableChatModel` uses: the one given, or one built from its models."""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from reliable_llm import BreakerPolicy, Clock, LLMManager

__all__ = ["OWN_MANAGER_SETTINGS", "attach_manager"]

#: Settings that configure a manager the chat model builds itself (not a shared one).
OWN_MANAGER_SETTINGS = ("max_retries", "failure_threshold", "recovery_timeout", "clock")
# Managers built from models=, recognised when LangChain rebuilds an instance from its fields.
_BUILT: weakref.WeakSet[LLMManager] = weakref.WeakSet()


def attach_manager(
    manager: LLMManager | None,
    models: Mapping[str, Any] | None,
    *,
    model: str | None,
    fallbacks: Sequence[str] | None,
    enable_caching: bool,
    max_retries: int | None,
    failure_threshold: int | None,
    recovery_timeout: float | None,
    clock: Clock | None,
) -> LLMManager:
    """Return the manager to serve with: ``manager``, or a new one serving ``models``.

    An instance rebuilt from another's fields (as LangChain's configurable fields do) gets
    both the models and the manager built for them, and keeps sharing that manager.

    Raises:
        ValueError: Neither or both of ``manager`` and ``models`` (or own-manager settings
            with a shared manager), or ``model`` / ``fallbacks`` name unregistered models.
    """
    own = {
        "max_retries": max_retries,
        "failure_threshold": failure_threshold,
        "recovery_timeout": recovery_timeout,
        "clock": clock,
    }
    if manager is not None and manager in _BUILT:
        if models is None or set(models) != set(manager.list_models()):
            manager = None
    elif manager is not None:
        given = [name for name, value in own.items() if value is not None]
        if models is not None or given or not enable_caching:
            raise ValueError(
                "pass either manager= or models= (with max_retries, failure_threshold, "
                "recovery_timeout, enable_caching, clock), not both; configure a shared "
                f"manager on the manager itself (got {given or ['models']})"
            )
    if manager is None:
        if not models:
            raise ValueError(
                "ReliableChatModel needs manager=LLMManager(...) or "
                "models={'name': provider_or_callable, ...}"
            )
        manager = _build(
            models,
            model,
            fallbacks,
            enable_caching,
            max_retries=max_retries,
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            clock=clock,
        )
        _BUILT.add(manager)
    registered = manager.list_models()
    for name in [model, *(fallbacks or ())]:
        if name is not None and registered and name not in registered:
            raise ValueError(f"model {name!r} is not registered; registered: {registered}")
    return manager


def _build(
    models: Mapping[str, Any],
    model: str | None,
    fallbacks: Sequence[str] | None,
    enable_caching: bool,
    *,
    max_retries: int | None,
    failure_threshold: int | None,
    recovery_timeout: float | None,
    clock: Clock | None,
) -> LLMManager:
    defaults = BreakerPolicy()
    manager = LLMManager(
        max_retries=3 if max_retries is None else max_retries,
        enable_caching=enable_caching,
        breaker=BreakerPolicy(
            failure_threshold=failure_threshold or defaults.failure_threshold,
            recovery_timeout=recovery_timeout or defaults.recovery_timeout,
        ),
        clock=clock,
    )
    for name, provider in models.items():
        manager.register_model(name, provider)
    first = model or next(iter(models))
    manager.set_active_model(first)
    chain = fallbacks if fallbacks is not None else list(models)
    manager.set_fallback_chain([n for n in chain if n != first])
    return manager
