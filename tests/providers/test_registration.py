"""Registering an SDK provider does its slow set-up; a missing key is a fallback, not an outage."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from reliable_llm import AllModelsFailedError, FailureReason, LLMManager, MissingAPIKeyError
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.testing import FakeClock, ScriptedModel
from reliable_llm.testing.fake_server import FakeLLMServer

_FRESH_PROCESS = textwrap.dedent(
    """
    import asyncio, sys, time
    from reliable_llm import LLMManager, TimeoutPolicy
    from reliable_llm.providers import {cls}

    manager = LLMManager(timeouts=TimeoutPolicy(total=5, per_attempt=0.3), enable_caching=False)
    assert "{sdk}" not in sys.modules
    manager.register_model("m", {cls}("model-x", api_key="k", base_url=sys.argv[1]))
    assert "{sdk}" in sys.modules, "register_model did not warm the provider"

    async def first_call():
        start = time.perf_counter()
        answer = await manager.achat("hi")
        return answer, time.perf_counter() - start

    answer, took = asyncio.run(first_call())
    assert (answer.text, len(answer.attempts)) == ("ok", 1), answer
    print(f"{{took:.3f}}")
    """
)


@pytest.mark.parametrize(
    ("cls", "sdk", "url"),
    [
        ("OpenAIProvider", "openai", "openai_base_url"),
        ("AnthropicProvider", "anthropic", "anthropic_base_url"),
    ],
)
def test_the_first_call_of_a_fresh_process_fits_a_short_timeout(
    cls: str, sdk: str, url: str, server: FakeLLMServer
) -> None:
    """In a fresh interpreter, the SDK is imported at registration: the first achat with a
    0.3 s per-attempt timeout succeeds on its first attempt."""
    code = _FRESH_PROCESS.format(cls=cls, sdk=sdk)
    result = subprocess.run(
        [sys.executable, "-c", code, getattr(server, url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 0.3


@pytest.mark.parametrize(
    ("provider_cls", "env_var"),
    [(OpenAIProvider, "OPENAI_API_KEY"), (AnthropicProvider, "ANTHROPIC_API_KEY")],
)
def test_a_primary_without_its_key_falls_back_loudly_once(
    provider_cls: type[OpenAIProvider] | type[AnthropicProvider],
    env_var: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No key for the primary: the backup answers, the primary's breaker counts it, the
    failure names the variable, and the warning is logged once, not per request."""
    monkeypatch.delenv(env_var, raising=False)
    manager = LLMManager(clock=FakeClock(), enable_caching=False)
    manager.register_model("primary", provider_cls("model-x"))
    manager.register_model("backup", ScriptedModel(default="from backup"))
    manager.set_fallback_chain(["backup"])
    with caplog.at_level(logging.WARNING, logger="reliable_llm"):
        answers = [manager.chat("hi") for _ in range(3)]
    assert {a.model for a in answers} == {"backup"}
    assert answers[0].fallback_from == ("primary",)
    failure = manager.get_model_info("primary")
    assert failure["breaker"]["failure_count"] == 3
    assert failure["last_error_type"] == "MissingAPIKeyError"
    assert manager.get_metrics()["fallbacks"]["by_reason"] == {FailureReason.NON_RETRYABLE.value: 3}
    warnings = [r for r in caplog.records if env_var in r.getMessage()]
    assert len(warnings) == 1


def test_missing_key_error_is_named_when_every_model_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no backup, AllModelsFailedError carries the MissingAPIKeyError naming the variable."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    manager = LLMManager(clock=FakeClock())
    manager.register_model("primary", OpenAIProvider("model-x"))
    with pytest.raises(AllModelsFailedError, match="OPENAI_API_KEY") as caught:
        manager.chat("hi")
    assert isinstance(caught.value.__cause__, MissingAPIKeyError)


def test_closing_the_manager_closes_its_providers_clients(server: FakeLLMServer) -> None:
    """async with LLMManager(): the providers' async and sync clients are closed on exit."""
    import asyncio

    provider = OpenAIProvider("model-x", api_key="k", base_url=server.openai_base_url)

    async def scenario() -> list[object]:
        async with LLMManager(clock=FakeClock()) as manager:
            manager.register_model("m", provider)
            assert (await manager.achat("hi")).text == "ok"
            assert manager.chat("hi", use_cache=False).text == "ok"
            return [provider.async_client(), provider.sync_client()]

    clients = asyncio.run(scenario())
    assert all(client.is_closed() for client in clients)  # type: ignore[attr-defined]
