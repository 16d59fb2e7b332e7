"""Loading the optional provider SDKs lazily, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from reliable_llm._errors import ConfigurationError, ProviderUnavailableError

__all__ = ["ProviderConfigurationError", "load_sdk"]


class ProviderConfigurationError(ProviderUnavailableError, ConfigurationError):
    """A provider cannot be used as configured: its SDK or API key is missing.

    It is a `ConfigurationError`: the manager raises it to the caller at once, without
    retrying, falling back or counting it against the breaker, since no other attempt can
    fix it. It is also a `ProviderUnavailableError`, so code that handles provider errors
    (a custom classifier, a framework adapter) sees a model that cannot be used, never a
    transient failure worth retrying.
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
