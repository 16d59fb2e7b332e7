"""Loading the optional provider SDKs lazily, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from reliable_llm._errors import ConfigurationError, ProviderUnavailableError

__all__ = ["ProviderConfigurationError", "load_sdk"]


class ProviderConfigurationError(ProviderUnavailableError, ConfigurationError):
    """A provider cannot be used as configured: its SDK or API key is missing.

    It is a `ConfigurationError` (so ``except ConfigurationError`` catches it when a provider
    is called directly) and a `ProviderUnavailableError` (so the manager neither retries it
    nor treats it as transient: it falls back to the next model at once).
    """


def load_sdk(module: str, extra: str) -> ModuleType:
    """Import the SDK ``module`` on first use.

    Raises:
        ProviderConfigurationError: The SDK is not installed; the message names the extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ProviderConfigurationError(
            f"the {module!r} package is needed for this provider but is not installed; "
            f"install it with: pip install 'reliable-llm[{extra}]'"
        ) from exc
