"""Registering models: the registry entry of one model, or of a deployment group and each of
its deployments (breaker, retry budget, gate with its limits and bulkhead), for `LLMManager`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reliable_llm._breaker import BreakerState, ModelBreaker
from reliable_llm._classify import ErrorClassifier
from reliable_llm._deployments import (
    Deployment,
    DeploymentGroup,
    GroupProvider,
    as_deployments,
    check_strategy,
    deployment_id,
    deployment_state,
    gate,
)
from reliable_llm._errors import ConfigurationError
from reliable_llm._policies import BreakerPolicy, RetryPolicy, check_policy
from reliable_llm._provider import Provider
from reliable_llm._registry import ModelEntry, as_provider, check_name
from reliable_llm._retry_budget import RetryBudget
from reliable_llm._validation import Validator, as_validators

if TYPE_CHECKING:
    from reliable_llm._manager import LLMManager

__all__ = ["Registrar"]


class Registrar:
    """Builds and adds the registry entries of one manager (see `LLMManager.register_model`)."""

    __slots__ = ("_manager",)

    def __init__(self, manager: LLMManager) -> None:
        self._manager = manager

    def register(
        self,
        name: str,
        inference_fn: object,
        metadata: Mapping[str, Any] | None,
        replace: bool,
        retry: RetryPolicy | None,
        breaker: BreakerPolicy | None,
        classify_error: ErrorClassifier | None,
        strategy: str | None,
        validators: Validator | Sequence[Validator] | None,
    ) -> None:
        """`LLMManager.register_model`, whose docstring says what is raised."""
        checks = as_validators("validators", validators)
        retry = check_policy("retry", retry, RetryPolicy, "RetryPolicy(max_retries=3)")
        breaker = check_policy("breaker", breaker, BreakerPolicy, "BreakerPolicy()")
        if isinstance(inference_fn, list | tuple | Deployment):
            specs = (inference_fn,) if isinstance(inference_fn, Deployment) else inference_fn
            self._register_group(
                name, specs, metadata, replace, retry, breaker, classify_error, strategy, checks
            )
            return
        if strategy is not None:
            raise ConfigurationError(
                f"strategy={strategy!r} applies to a deployment group; register model "
                f"{name!r} with a list of deployments, e.g. [provider_a, provider_b]"
            )
        provider = as_provider(name, inference_fn)
        provider.warm()
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ConfigurationError(f"metadata must be a dict, got {type(metadata).__name__}")
        entry = self._entry(
            name,
            provider,
            metadata,
            retry,
            breaker,
            classify_error,
            self._manager._on_breaker_change,
            validators=checks,
        )
        self._manager._registry.add(entry, replace, lambda old: self._track(name, (name,), old))

    def _entry(
        self,
        name: str,
        provider: Provider,
        metadata: Mapping[str, Any] | None,
        retry: RetryPolicy | None,
        breaker: BreakerPolicy | None,
        classify_error: ErrorClassifier | None,
        on_change: Callable[[str, BreakerState, BreakerState], None] | None,
        **group: Any,
    ) -> ModelEntry:
        """The registry entry of a model, or of one deployment of a group (``member_of=``),
        or of a group itself (``group=``): the one place an entry is built."""
        manager = self._manager
        retry = retry or manager.retry_policy
        shared = manager.shared_state
        make_breaker = ModelBreaker if shared is None else shared.breaker
        return ModelEntry(
            name=name,
            provider=provider,
            metadata=dict(metadata or {}),
            breaker=make_breaker(
                name, breaker or manager.breaker_policy, manager.clock, on_change, manager._random
            ),
            retry=retry,
            classifier=classify_error,
            budget=RetryBudget.for_policy(retry, manager.clock),
            **group,
        )

    def _track(self, name: str, reported: Sequence[str], old: ModelEntry | None) -> None:
        """Report ``reported`` (a model, or a group's deployments) in the metrics from now on,
        and stop reporting what ``name`` (``old``) was before."""
        if old is not None and old.group is not None:
            for member in old.group.members:
                if member.name not in reported:
                    self._manager.metrics.forget(member.name)
        elif name not in reported:
            self._manager.metrics.forget(name)
        for each in reported:
            self._manager.metrics.track(each)

    def _register_group(
        self,
        name: str,
        models: Sequence[object],
        metadata: Mapping[str, Any] | None,
        replace: bool,
        retry: RetryPolicy | None,
        breaker: BreakerPolicy | None,
        classify_error: ErrorClassifier | None,
        strategy: str | None,
        checks: tuple[Validator, ...],
    ) -> None:
        """Register ``name`` as a deployment group (see `LLMManager.register_model`)."""
        check_name(name)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ConfigurationError(f"metadata must be a dict, got {type(metadata).__name__}")
        strategy = check_strategy("weighted" if strategy is None else strategy)
        specs = as_deployments(name, models)
        group = DeploymentGroup(name, strategy, self._manager.clock, self._manager._random)
        members: list[ModelEntry] = []
        states = []
        for index, spec in enumerate(specs):
            member_id = deployment_id(name, spec, index)
            provider = as_provider(member_id, spec.model)
            provider.warm()
            if self._manager.shared_state is None:
                state = deployment_state(spec, member_id, index, strategy, self._manager.clock)
            else:  # limits held by the fleet: each deployment's window is in Redis
                make = functools.partial(self._manager.shared_state.limiter, member_id)
                state = deployment_state(
                    spec, member_id, index, strategy, self._manager.clock, make
                )
            states.append(state)
            members.append(
                self._entry(
                    member_id,
                    gate(provider, state, strategy, self._manager.clock),
                    {**(metadata or {}), **(spec.metadata or {})},
                    retry,
                    breaker,
                    classify_error,
                    self._group_listener(group, index),
                    member_of=group,
                    validators=checks,
                )
            )
        group.attach(members, states)
        # The group's own entry describes it; requests use its deployments' entries (and
        # breakers: the group's breaker is never consulted).
        entry = self._entry(
            name,
            GroupProvider(group),
            metadata,
            retry,
            breaker,
            classify_error,
            None,
            group=group,
            validators=checks,
        )
        ids = tuple(m.name for m in members)
        self._manager._registry.add(
            entry, replace, lambda old: self._track(name, ids, old), members
        )

    def _group_listener(
        self, group: DeploymentGroup, index: int
    ) -> Callable[[str, BreakerState, BreakerState], None]:
        def on_change(model: str, old: BreakerState, new: BreakerState) -> None:
            group.on_transition(index, old, new)
            self._manager._on_breaker_change(model, old, new)

        return on_change
