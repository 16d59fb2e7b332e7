"""What every SDK-backed provider shares: key holding, lazy clients, timeouts, translation."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar

from reliable_llm._errors import ConfigurationError, ProviderError
from reliable_llm._provider import Provider
from reliable_llm.providers._sdk import ProviderConfigurationError, load_sdk
from reliable_llm.providers._secret import SecretStr, resolve_secret
from reliable_llm.providers._translate import translate_error

__all__ = ["SDKProvider"]

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0


def _check_timeout(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


class SDKProvider(Provider):
    """Base class of the providers built on an official SDK.

    Clients are created on first use, with the SDK's own retries turned off (the manager
    retries); a client passed in is copied with ``max_retries=0`` for the same reason. The
    API key is held in a `SecretStr` and only ever handed to the SDK.
    """

    #: The SDK module and the extra that installs it.
    sdk_module: ClassVar[str] = ""
    sdk_extra: ClassVar[str] = ""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | SecretStr | None,
        api_key_env: str | None,
        requires_key: bool,
        base_url: str | None,
        connect_timeout: float,
        read_timeout: float,
        default_params: Mapping[str, Any] | None,
        default_headers: Mapping[str, str] | None,
        client: Any,
        async_client: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError(f"model must be a non-empty str, got {model!r}")
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.requires_key = requires_key
        self.connect_timeout = _check_timeout("connect_timeout", connect_timeout)
        self.read_timeout = _check_timeout("read_timeout", read_timeout)
        self.default_params: dict[str, Any] = dict(default_params or {})
        self.default_headers: dict[str, str] = dict(default_headers or {})
        self._explicit_key = api_key
        self._secret: SecretStr | None = resolve_secret(api_key, None)
        self._lock = threading.Lock()
        self._sdk: ModuleType | None = None
        self._client: Any = _without_retries(client)
        self._async_client: Any = _without_retries(async_client)
        self._last_timeout: tuple[float | None, Any] | None = None

    # -- lazy setup ----------------------------------------------------------------------------

    def _load(self) -> ModuleType:
        sdk = self._sdk
        if sdk is None:
            sdk = self._sdk = load_sdk(self.sdk_module, self.sdk_extra)
        return sdk

    def _api_key(self) -> str | None:
        """The key for a new client, read from the environment if not given; None if optional.

        Raises:
            ProviderConfigurationError: The key is required and neither given nor set.
        """
        secret = self._secret or resolve_secret(self._explicit_key, self.api_key_env)
        if secret is None and self.requires_key:
            where = (
                f"set the {self.api_key_env} environment variable or " if self.api_key_env else ""
            )
            raise ProviderConfigurationError(
                f"no API key for {self.provider_name} model {self.model!r}: "
                f"{where}pass api_key= to {type(self).__name__}"
            )
        self._secret = secret
        return None if secret is None else secret.get_secret_value()

    def sync_client(self) -> Any:
        """The SDK client, created on first use."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client(self._load(), asynchronous=False)
                client = self._client
        return client

    def async_client(self) -> Any:
        """The asynchronous SDK client, created on first use."""
        client = self._async_client
        if client is None:
            with self._lock:
                if self._async_client is None:
                    self._async_client = self._make_client(self._load(), asynchronous=True)
                client = self._async_client
        return client

    def _make_client(self, sdk: ModuleType, *, asynchronous: bool) -> Any:
        """Build the SDK client (``max_retries=0``); subclasses know the constructor."""
        raise NotImplementedError

    def _client_timeout(self, sdk: ModuleType) -> Any:
        return sdk.Timeout(self.read_timeout, connect=self.connect_timeout)

    def _call_timeout(self, timeout: float | None) -> Any:
        """The SDK timeout of one call: the manager's budget, connect capped by ours."""
        cached = self._last_timeout
        if cached is not None and cached[0] == timeout:
            return cached[1]
        sdk = self._load()
        if timeout is None:
            value = self._client_timeout(sdk)
        else:
            value = sdk.Timeout(timeout, connect=min(self.connect_timeout, timeout))
        # Most calls get the same per-attempt budget; reuse its (immutable) Timeout.
        self._last_timeout = (timeout, value)
        return value

    def _translate(self, exc: BaseException) -> ProviderError | None:
        """Our error for ``exc`` (raise it ``from exc``), or None for a foreign exception."""
        return translate_error(exc, self._sdk, provider=self.provider_name, secret=self._secret)

    def close(self) -> None:
        """Close the synchronous client's connections; a later call opens a new client."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both clients' connections (call it before the event loop ends)."""
        with self._lock:
            client, self._async_client = self._async_client, None
        if client is not None:
            await client.close()
        self.close()

    # -- description ---------------------------------------------------------------------------

    def describe(self) -> dict[str, object]:
        """Public facts: provider, model, endpoint, key source and timeouts; never the key."""
        return {
            "provider": self.provider_name,
            "model": self.model,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"


def _without_retries(client: Any) -> Any:
    if client is None:
        return None
    with_options = getattr(client, "with_options", None)
    return with_options(max_retries=0) if with_options is not None else client
