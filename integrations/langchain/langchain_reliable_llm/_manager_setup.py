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
    AdapterCore,
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


class Core(AdapterCore):
    """The `AdapterCore` of a `ReliableChatModel`, with its cached identifying params
    (see `ReliableChatModel._identifying_params`)."""

    __slots__ = ("identity",)

    def __init__(
        self,
        manager: LLMManager,
        *,
        per_call_route: bool,
        model: str | None = None,
        fallbacks: list[str] | None = None,
    ) -> None:
        super().__init__(manager, per_call_route=per_call_route, model=model, fallbacks=fallbacks)
        self.identity: tuple[tuple[str, ...], tuple[Any, ...], dict[str, Any], Any] | None = None


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
    return Core.build(
        manager, models, model=model, fallbacks=fallbacks, options=options, wrap=_as_model
    )
