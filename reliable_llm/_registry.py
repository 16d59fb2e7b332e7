"""Registered models and the route a request takes through them."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from reliable_llm._breaker import ModelBreaker
from reliable_llm._callable import CallableProvider
from reliable_llm._capabilities import TEXT_ONLY, ModelCapabilities, capabilities_of
from reliable_llm._classify import ErrorClassifier
from reliable_llm._errors import (
    ConfigurationError,
    FailureReason,
    ModelFailure,
    UnknownModelError,
)
from reliable_llm._policies import RetryPolicy
from reliable_llm._prices import Prices, prices_from_metadata
from reliable_llm._provider import Provider
from reliable_llm._retry_budget import RetryBudget
from reliable_llm._validation import NO_VALIDATORS, Validator

if TYPE_CHECKING:
    from reliable_llm._deployments import DeploymentGroup
    from reliable_llm._events import FallbackTaken

__all__ = ["ModelEntry", "Registry", "as_provider", "check_chain", "check_name", "expand"]


@dataclass(slots=True, eq=False)
class ModelEntry:
    """A registered model (or one deployment of a group): its provider, metadata, breaker and
    policies.

    ``group`` is set on a deployment group's own entry (routes expand it into its
    deployments); ``member_of`` on each deployment's entry. ``route_name`` is the registered
    name a request asks for: the group's name for a deployment, else ``name``.
    ``capabilities`` are the content parts it accepts: the provider's declared defaults
    (``provider.capabilities``; text only when it declares none) with the overrides of
    ``metadata["capabilities"]``.
    """

    name: str
    provider: Provider
    metadata: dict[str, Any]
    breaker: ModelBreaker
    retry: RetryPolicy
    classifier: ErrorClassifier | None
    # Checks every answer of this model must pass (see reliable_llm.validators).
    validators: tuple[Validator, ...] = NO_VALIDATORS
    budget: RetryBudget | None = None  # the retry budget ``retry`` asks for, if any
    description: Mapping[str, Any] = field(default_factory=dict)
    group: DeploymentGroup | None = None
    member_of: DeploymentGroup | None = None
    circuit_open: ModelFailure = field(init=False)
    # The FallbackTaken event of a request skipping this model while its breaker is open,
    # by the next model's name (None: none left); filled as routes meet it.
    open_events: dict[str | None, FallbackTaken] = field(init=False)
    prices: Prices | None = field(init=False)
    route_name: str = field(init=False)
    capabilities: ModelCapabilities = field(init=False)

    def __post_init__(self) -> None:
        self.route_name = self.name if self.member_of is None else self.member_of.name
        self.prices = prices_from_metadata(self.name, self.metadata)
        default = getattr(self.provider, "capabilities", None)
        if not isinstance(default, ModelCapabilities):
            default = TEXT_ONLY
        self.capabilities = capabilities_of(self.name, default, self.metadata)
        # Immutable, so one instance serves every request that skips this model while open.
        self.circuit_open = ModelFailure(self.name, FailureReason.CIRCUIT_OPEN)
        self.open_events = {}
        # Built once: a re-registration makes a new entry, hence a new description.
        self.description = MappingProxyType(
            {
                "name": self.name,
                "metadata": dict(self.metadata),
                "provider": self.provider.describe(),
                "capabilities": self.capabilities.to_dict(),
            }
        )

    def rejection(self) -> ModelFailure:
        """Why the breaker rejected this model: its open circuit (``circuit_open``), or a
        Retry-After cooldown the fleet shares (``cooling_down``, with the seconds left)."""
        left = self.breaker.cooldown()
        if left <= 0:
            return self.circuit_open
        detail = f"Retry-After cooldown, {left:.3g}s left"
        return ModelFailure(self.name, FailureReason.COOLING_DOWN, detail=detail)


def check_name(name: object) -> None:
    """Raise `ConfigurationError` unless ``name`` can be a registered model's name."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"model name must be a non-empty str, got {name!r}")


def as_provider(name: object, model: object) -> Provider:
    """Validate a registration and return the model as a `Provider`.

    Raises:
        ConfigurationError: An empty name, a bad model string, or a model that is neither a
            Provider, a callable nor a ``"<preset>:<model>"`` string.
    """
    check_name(name)
    if isinstance(model, Provider):
        return model
    if isinstance(model, str):  # "<preset>:<model>", e.g. "openai:gpt-4o-mini"
        from reliable_llm.providers._model_string import provider_from_string

        return provider_from_string(model)
    if callable(model):
        return CallableProvider(model)
    raise ConfigurationError(
        f"model {name!r} must be a callable fn(prompt, **kwargs) -> str, a "
        f"reliable_llm.Provider or a '<preset>:<model>' string, got {type(model).__name__}"
    )


def check_chain(model_names: Sequence[str]) -> tuple[str, ...]:
    """Validate a fallback chain's shape (not whether its models exist).

    Raises:
        ConfigurationError: A str instead of a list, an empty or non-str entry, or a repeat.
    """
    if isinstance(model_names, str):
        raise ConfigurationError(
            f"fallback chain must be a list of model names, got the str {model_names!r}; "
            f"did you mean [{model_names!r}]?"
        )
    chain = tuple(model_names)
    for name in chain:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"fallback chain entries must be model names, got {name!r}")
    duplicates = sorted({n for n in chain if chain.count(n) > 1})
    if duplicates:
        raise ConfigurationError(
            f"fallback chain lists {duplicates} more than once; each model is tried at most once"
        )
    return chain


class Registry:
    """Models by name, the active model and the fallback chain.

    Writes take a lock and publish a new precomputed ``route`` tuple; requests read it
    without locking.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.models: dict[str, ModelEntry] = {}
        self.deployments: dict[str, ModelEntry] = {}  # deployment id -> entry, every group's
        self.active: str | None = None
        self.chain: tuple[str, ...] = ()
        # The default route, ready to serve; empty when it holds a deployment group (each
        # request then orders the group's deployments afresh: see `route_for`).
        self.route: tuple[ModelEntry, ...] = ()
        self.route_names: tuple[str, ...] = ()
        self._template: tuple[ModelEntry, ...] = ()  # the default route, groups unexpanded
        # When the default route holds a group: (that route unexpanded, a function giving one
        # request's expansion); None otherwise. One tuple, so readers see a consistent pair.
        self.grouped: tuple[tuple[ModelEntry, ...], Callable[[], tuple[ModelEntry, ...]]] | None = (
            None
        )

    def add(
        self,
        entry: ModelEntry,
        replace: bool,
        on_added: Callable[[ModelEntry | None], None],
        members: Sequence[ModelEntry] = (),
    ) -> None:
        """Register ``entry`` (with its deployments, for a group); the first model registered
        becomes the active one. ``on_added`` gets the entry replaced, if any.

        Raises:
            ConfigurationError: The name is taken and ``replace`` is False, or a deployment id
                is a registered name.
        """
        with self._lock:
            if entry.name in self.models and not replace:
                raise ConfigurationError(
                    f"model {entry.name!r} is already registered; pass replace=True to replace it"
                )
            if entry.name in self.deployments:
                raise ConfigurationError(
                    f"model name {entry.name!r} is the id of a deployment of group "
                    f"{self.deployments[entry.name].route_name!r}; choose another name"
                )
            for member in members:
                if member.name in self.models:
                    raise ConfigurationError(
                        f"deployment id {member.name!r} is a registered model name; "
                        "give the deployment another name"
                    )
            old = self.models.get(entry.name)
            if old is not None and old.group is not None:
                for member in old.group.members:
                    self.deployments.pop(member.name, None)
            self.models[entry.name] = entry
            for member in members:
                self.deployments[member.name] = member
            on_added(old)
            if self.active is None:
                self.active = entry.name
            self._rebuild()

    def entry(self, name: str) -> ModelEntry:
        """The entry registered as ``name``.

        Raises:
            UnknownModelError: No such model.
        """
        entry = self.models.get(name)
        if entry is None:
            raise UnknownModelError(name, list(self.models))
        return entry

    def serving(self) -> list[ModelEntry]:
        """The entries that take calls, each with its own breaker: every plain model and
        every deployment of a group (in registration order)."""
        entries: list[ModelEntry] = []
        for entry in list(self.models.values()):
            group = entry.group
            if group is None:
                entries.append(entry)
            else:
                entries.extend(group.members)
        return entries

    def entry_or_deployment(self, name: str) -> ModelEntry:
        """The entry registered as ``name``, or the deployment with that id.

        Raises:
            UnknownModelError: Neither.
        """
        entry = self.models.get(name) or self.deployments.get(name)
        if entry is None:
            raise UnknownModelError(name, list(self.models))
        return entry

    def set_active(self, name: str) -> None:
        """Make ``name`` the first model of every route."""
        with self._lock:
            self.entry(name)
            self.active = name
            self._rebuild()

    def set_chain(self, model_names: Sequence[str]) -> None:
        """Set the fallback chain."""
        chain = check_chain(model_names)
        with self._lock:
            for name in chain:
                self.entry(name)
            self.chain = chain
            self._rebuild()

    def _rebuild(self) -> None:
        template = self.resolve(self.active, self.chain) if self.active else ()
        self._template = template
        grouped = any(e.group is not None for e in template)
        if not grouped:
            self.grouped = None
        elif len(template) == 1:
            self.grouped = (template, template[0].group.order)  # type: ignore[union-attr]
        else:
            self.grouped = (template, functools.partial(expand, template))
        self.route = () if grouped else template
        self.route_names = tuple(e.name for e in template)

    def resolve(self, first: str, chain: Iterable[str]) -> tuple[ModelEntry, ...]:
        """``first`` then ``chain``, each model once."""
        entries = [self.entry(first)]
        for name in chain:
            entry = self.entry(name)
            if entry not in entries:
                entries.append(entry)
        return tuple(entries)

    def route_for(
        self, model: str | None, fallback_chain: Sequence[str] | None
    ) -> tuple[ModelEntry, ...]:
        """The route of one request, with its per-call overrides.

        Raises:
            ConfigurationError: No active model and no ``model`` override.
            UnknownModelError: An override names an unregistered model.
        """
        return expand(self.template_for(model, fallback_chain))

    def template_for(
        self, model: str | None, fallback_chain: Sequence[str] | None
    ) -> tuple[ModelEntry, ...]:
        """The route of one request with deployment groups unexpanded (see `route_for`)."""
        if model is None and fallback_chain is None and self._template:
            return self._template
        first = model if model is not None else self.active
        if first is None:
            raise ConfigurationError(
                "no active model; register one with register_model() (the first one registered "
                "becomes active), choose one with set_active_model(), or pass model="
            )
        chain = self.chain if fallback_chain is None else check_chain(fallback_chain)
        return self.resolve(first, chain)


def expand(template: tuple[ModelEntry, ...]) -> tuple[ModelEntry, ...]:
    """The route with each deployment group replaced by its deployments, in the order the
    group's strategy gives this request."""
    if len(template) == 1:  # one group and no fallback: its order is the route
        group = template[0].group
        return template if group is None else group.order()
    route: list[ModelEntry] = []
    for entry in template:
        group = entry.group
        if group is None:
            route.append(entry)
        else:
            route.extend(group.order())
    return tuple(route)
