"""Which manager a `ReliableChatModel` uses, and what the model keeps about it between calls.

The rules for building or sharing a manager are the same in both adapters and live in
`reliable_llm.adapters`; this module adds the LangChain side: LangChain chat models given to
``models=`` are wrapped in `LangChainChatProvider`, and `Core` holds the manager with what
each call needs to know about the route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_reliable_llm._provider import LangChainChatProvider
from reliable_llm import LLMManager
from reliable_llm.adapters import (
    OWN_MANAGER_OPTIONS,
    attach_manager,
    check_option_names,
    manager_arguments,
)

__all__ = [
    "OWN_MANAGER_OPTIONS",
    "Core",
    "attach_manager",
    "build_core",
    "check_option_names",
    "manager_arguments",
]


class Core:
    """The manager and caches behind a `ReliableChatModel` (kept outside pydantic's fields).

    ``per_call_route`` says whether each call names its model and fallbacks (a model around a
    shared manager with its own route) or uses the manager's precomputed route; ``model``
    and ``fallbacks`` are the model's fields that route was set up for. ``identity`` caches
    LangChain's identifying params (see `ReliableChatModel._identifying_params`).
    """

    __slots__ = ("fallbacks", "identity", "manager", "model", "per_call_route")

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
        self.identity: tuple[tuple[str, ...], tuple[Any, ...], dict[str, Any], Any] | None = None

    def per_call(self, model: str | None, fallbacks: list[str] | None) -> bool:
        """Whether a call with these fields must name its route (they changed, e.g. on a copy)."""
        return self.per_call_route or model is not self.model or fallbacks is not self.fallbacks


def _as_model(value: Any) -> Any:
    """A LangChain chat model given to ``models=`` serves through `LangChainChatProvider`."""
    return LangChainChatProvider(value) if isinstance(value, BaseChatModel) else value


def build_core(
    manager: LLMManager | None,
    models: Mapping[str, Any] | None,
    *,
    model: str | None,
    fallbacks: list[str] | None,
    options: Mapping[str, Any],
) -> Core:
    """Use ``manager`` as is, or build one from ``models`` and the own-manager ``options``.

    Raises:
        ConfigurationError: Neither or both of ``manager`` and ``models``, own-manager options
            with an existing manager, or an invalid model or option.
        UnknownModelError: ``model`` or a fallback is not registered.
    """
    own = manager is None or models is not None
    served = attach_manager(
        manager, models, model=model, fallbacks=fallbacks, options=options, wrap=_as_model
    )
    per_call = not own and (model is not None or fallbacks is not None)
    return Core(served, per_call_route=per_call, model=model, fallbacks=fallbacks)
