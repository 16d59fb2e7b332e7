"""`AzureOpenAIProvider`: an Azure OpenAI deployment through ``openai.AzureOpenAI``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from reliable_llm.providers._base import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
from reliable_llm.providers._openai import OpenAIProvider
from reliable_llm.providers._sdk import ProviderConfigurationError
from reliable_llm.providers._secret import SecretStr

__all__ = ["DEFAULT_AZURE_API_VERSION", "AzureOpenAIProvider"]

#: The API version used when neither ``api_version`` nor ``OPENAI_API_VERSION`` is set.
DEFAULT_AZURE_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAIProvider):
    """A deployment of Azure OpenAI, with an API key or a Microsoft Entra ID token provider.

    Args:
        deployment: The deployment name (Azure routes by deployment, not model id).
        endpoint: ``https://<resource>.openai.azure.com``; default: ``AZURE_OPENAI_ENDPOINT``.
        api_version: Default: ``OPENAI_API_VERSION``, else `DEFAULT_AZURE_API_VERSION`.
        api_key: Default: ``AZURE_OPENAI_API_KEY``. Not needed with a token provider.
        azure_ad_token_provider: A callable returning an Entra ID bearer token.
        connect_timeout, read_timeout, default_params, default_headers, client,
        async_client: As for `OpenAIProvider`.

    Raises:
        ConfigurationError: An invalid deployment name or timeout. A missing endpoint raises
            `ProviderConfigurationError`, a missing credential `MissingAPIKeyError`, at
            each call.
    """

    provider_name = "azure_openai"

    def __init__(
        self,
        deployment: str,
        *,
        endpoint: str | None = None,
        api_version: str | None = None,
        api_key: str | SecretStr | None = None,
        azure_ad_token_provider: Callable[[], Any] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        default_params: Mapping[str, Any] | None = None,
        default_headers: Mapping[str, str] | None = None,
        client: Any = None,
        async_client: Any = None,
    ) -> None:
        super().__init__(
            deployment,
            api_key=api_key,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            default_params=default_params,
            default_headers=default_headers,
            client=client,
            async_client=async_client,
        )
        self.api_key_env = "AZURE_OPENAI_API_KEY"
        self.requires_key = azure_ad_token_provider is None
        self.endpoint = endpoint
        self.api_version = api_version
        self._token_provider = azure_ad_token_provider

    def _settings(self) -> tuple[str, str]:
        endpoint = self.endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ProviderConfigurationError(
                f"no endpoint for Azure OpenAI deployment {self.model!r}: set the "
                "AZURE_OPENAI_ENDPOINT environment variable or pass endpoint="
            )
        version = self.api_version or os.environ.get("OPENAI_API_VERSION")
        return endpoint, version or DEFAULT_AZURE_API_VERSION

    def _make_client(self, sdk: ModuleType, *, asynchronous: bool) -> Any:
        endpoint, version = self._settings()
        self.endpoint, self.api_version = endpoint, version
        cls = sdk.AsyncAzureOpenAI if asynchronous else sdk.AzureOpenAI
        return cls(
            azure_endpoint=endpoint,
            api_version=version,
            api_key=self._api_key(),
            azure_ad_token_provider=self._token_provider,
            timeout=self._client_timeout(sdk),
            max_retries=0,
            default_headers=self.default_headers or None,
            http_client=self._async_http_client(sdk) if asynchronous else None,
        )

    def describe(self) -> dict[str, object]:
        """Public facts about this deployment; never the key or token."""
        info = super().describe()
        info.pop("base_url", None)
        info["deployment"] = info.pop("model")
        info["endpoint"] = self.endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        info["api_version"] = self.api_version or os.environ.get("OPENAI_API_VERSION")
        info["auth"] = "entra_id" if self._token_provider is not None else "api_key"
        return info
