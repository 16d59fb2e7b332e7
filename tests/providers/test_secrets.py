"""API keys never leak: not in logs, reprs, descriptions, metrics, cache, bodies or errors."""

from __future__ import annotations

import json
import logging
import pickle
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from reliable_llm import (
    AllModelsFailedError,
    AuthenticationError,
    ChatRequest,
    ConfigurationError,
    Message,
    MissingAPIKeyError,
)
from reliable_llm.providers import (
    AnthropicProvider,
    AzureOpenAIProvider,
    OpenAIProvider,
    SecretStr,
    preset,
)
from reliable_llm.testing.fake_server import FakeLLMServer, HTTPError, Reply, unauthorized
from tests.providers.conftest import KINDS, MODES, SENTINEL, ManagerFactory, Target, ask


class RecordingCache:
    """A cache backend that keeps every key and value it was given."""

    def __init__(self) -> None:
        self.entries: dict[str, Mapping[str, Any]] = {}

    def get(self, key: str) -> Mapping[str, Any] | None:
        return self.entries.get(key)

    def set(self, key: str, value: Mapping[str, Any], ttl: float | None) -> None:
        self.entries[key] = value

    def clear(self) -> None:
        self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)


def test_secret_str_hides_its_value() -> None:
    """SecretStr masks repr, str and f-strings, compares by value and refuses pickling."""
    secret = SecretStr(SENTINEL)
    assert SENTINEL not in repr(secret) + str(secret) + f"{secret}" + f"{secret:>40}"
    assert secret.get_secret_value() == SENTINEL
    assert secret == SecretStr(SENTINEL) and secret != SecretStr("other")
    with pytest.raises(TypeError):
        pickle.dumps(secret)


@pytest.mark.parametrize("kind", KINDS)
async def test_sentinel_key_never_leaks(
    kind: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through answers, a cached stream and an auth failure, the key shows up nowhere."""
    caplog.set_level(logging.DEBUG)
    made = target(kind)
    cache = RecordingCache()
    server.script(made.scripted_as, Reply("first"), Reply("second"), unauthorized())
    manager = make_manager(made.provider, fallback=False, caching=True, cache_backend=cache)

    await ask(manager, "sync", "one", api_key=SENTINEL)
    await ask(manager, "astream", "two")
    with pytest.raises(AllModelsFailedError) as caught:
        await ask(manager, "async", "three")

    error = caught.value
    assert isinstance(error.__cause__, AuthenticationError)
    texts = [
        caplog.text,
        repr(made.provider),
        repr(manager),
        json.dumps(made.provider.describe()),
        json.dumps(manager.get_model_info("primary"), default=str),
        json.dumps(manager.get_metrics(), default=str),
        json.dumps(cache.entries),
        "".join(traceback.format_exception(error)),
        str(error.__cause__),
        repr(error.__cause__),
    ]
    for text in texts:
        assert SENTINEL not in text
    assert len(cache.entries) == 2
    for request in server.requests:
        assert SENTINEL not in json.dumps(request.body), "api_key in extra must not be sent"


@pytest.mark.parametrize(
    ("factory", "env_var"),
    [
        (lambda: OpenAIProvider("gpt-test"), "OPENAI_API_KEY"),
        (lambda: AnthropicProvider("claude-test"), "ANTHROPIC_API_KEY"),
        (
            lambda: AzureOpenAIProvider("deploy", endpoint="https://example.invalid"),
            "AZURE_OPENAI_API_KEY",
        ),
        (lambda: preset("groq", "llama-test"), "GROQ_API_KEY"),
        (lambda: preset("mistral", "mistral-small"), "MISTRAL_API_KEY"),
    ],
)
def test_missing_key_names_the_env_var_at_first_use(
    factory: Callable[[], Any], env_var: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Construction and warm() succeed without a key; a call raises MissingAPIKeyError naming it."""
    monkeypatch.delenv(env_var, raising=False)
    provider = factory()
    provider.warm()

    with pytest.raises(MissingAPIKeyError, match=env_var) as caught:
        provider.complete(_request())

    assert isinstance(caught.value, AuthenticationError)
    assert not isinstance(caught.value, ConfigurationError)
    assert caught.value.env_var == env_var


def test_missing_azure_endpoint_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Azure deployment without endpoint names AZURE_OPENAI_ENDPOINT."""
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    provider = AzureOpenAIProvider("deploy", api_key=SENTINEL)

    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        provider.complete(_request())


def test_key_is_read_from_the_environment(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without api_key=, OPENAI_API_KEY is used, sent as the bearer token only."""
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    provider = OpenAIProvider("gpt-test", base_url=server.openai_base_url)

    assert provider.complete(_request()).text == "ok"

    assert server.requests[0].headers["authorization"] == f"Bearer {SENTINEL}"
    provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_missing_key_falls_back_like_a_401(
    mode: str, make_manager: ManagerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model without its key is given up at once (no retry), counted, and the backup answers."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    manager = make_manager(OpenAIProvider("gpt-test"), max_retries=3)

    response = await ask(manager, mode)

    assert response.text == "fallback answer"
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == 1
    assert manager.get_model_info("primary")["attempts"] == 1


async def test_missing_key_is_named_in_all_models_failed(
    make_manager: ManagerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a fallback, AllModelsFailedError carries a MissingAPIKeyError naming the variable."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    manager = make_manager(AnthropicProvider("claude-test"), fallback=False)

    with pytest.raises(AllModelsFailedError, match="ANTHROPIC_API_KEY") as caught:
        await manager.achat("hi")

    assert isinstance(caught.value.errors[-1], MissingAPIKeyError)


def test_missing_key_is_logged_once_per_provider(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """warm() and every later call raise or log, but the warning naming the variable comes once."""
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    provider = preset("groq", "llama-test")

    with caplog.at_level(logging.WARNING, logger="reliable_llm.providers"):
        provider.warm()
        for _ in range(3):
            with pytest.raises(MissingAPIKeyError):
                provider.complete(_request())

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "GROQ_API_KEY" in warnings[0].getMessage()


def test_key_set_after_a_miss_is_used(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the variable is set, the next call succeeds: a missing key is not remembered."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = OpenAIProvider("gpt-test", base_url=server.openai_base_url)
    provider.warm()
    with pytest.raises(MissingAPIKeyError):
        provider.complete(_request())

    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    assert provider.complete(_request()).text == "ok"
    provider.close()


def test_keyless_preset_never_sends_the_openai_key(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local server preset sends a placeholder, not OPENAI_API_KEY from the environment."""
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    provider = preset("ollama", "llama3.2", base_url=server.openai_base_url)

    assert provider.complete(_request()).text == "ok"

    assert SENTINEL not in server.requests[0].headers["authorization"]
    assert isinstance(provider, OpenAIProvider)
    provider.close()


def _request() -> ChatRequest:
    return ChatRequest((Message.user("hi"),))


@pytest.mark.parametrize("kind", KINDS)
async def test_key_echoed_by_the_server_is_masked(
    kind: str,
    server: FakeLLMServer,
    make_manager: ManagerFactory,
    target: Callable[..., Target],
) -> None:
    """An error message that echoes the key shows a mask, in our error and its SDK cause."""
    made = target(kind)
    echo = HTTPError(401, message=f"Incorrect API key provided: {SENTINEL}.")
    server.script(made.scripted_as, echo)
    manager = make_manager(made.provider, fallback=False)

    with pytest.raises(AllModelsFailedError) as caught:
        await manager.achat("hi")

    text = "".join(traceback.format_exception(caught.value))
    assert SENTINEL not in text
    assert "Incorrect API key provided: **********." in text
