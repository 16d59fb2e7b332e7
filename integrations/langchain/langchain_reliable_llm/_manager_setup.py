"""Which manager a `ReliableChatModel` uses: the rules shared by both adapters, in
`reliable_llm.adapters`."""

from __future__ import annotations

from reliable_llm.adapters import (
    OWN_MANAGER_OPTIONS,
    attach_manager,
    check_option_names,
    manager_arguments,
)

__all__ = ["OWN_MANAGER_OPTIONS", "attach_manager", "check_option_names", "manager_arguments"]
