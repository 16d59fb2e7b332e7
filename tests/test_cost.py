"""Cost from the prices a user puts in a model's metadata."""

from __future__ import annotations

import sys

import pytest
from drivers import Ask

from reliable_llm import ChatResponse, ConfigurationError, LLMManager, Usage
from reliable_llm.events import RequestFinished
from reliable_llm.testing import ScriptedModel


def test_each_answer_reports_its_cost(manager: LLMManager, ask: Ask) -> None:
    """An answer's cost is its usage times the per-million prices, on every driver; a cached
    repeat reports none (nothing was paid for it)."""
    manager.register_model(
        "m", ScriptedModel(default="one two three"), metadata={"prices": {"input": 2, "output": 8}}
    )
    first = ask("four words of prompt")
    assert first.usage is not None
    assert (first.usage.input_tokens, first.usage.output_tokens) == (4, 3)
    assert first.cost == pytest.approx((4 * 2 + 3 * 8) / 1e6)
    again = ask("four words of prompt")
    assert again.cached and again.cost is None


def test_no_prices_no_cost(manager: LLMManager) -> None:
    """A model registered without prices reports no cost."""
    manager.register_model("m", ScriptedModel())
    assert manager.chat("hi").cost is None


@pytest.mark.parametrize(
    "prices",
    [
        {"input": 1.0},
        {"input": 1.0, "output": -1},
        {"input": "1", "output": 2},
        {"input": 1, "output": 2, "cache_read": 1},
        [1, 2],
    ],
)
def test_bad_prices_are_refused_at_registration(manager: LLMManager, prices: object) -> None:
    """Prices that are not non-negative numbers for input and output are a configuration
    error when the model is registered, not a wrong bill later."""
    with pytest.raises(ConfigurationError, match="prices"):
        manager.register_model("m", ScriptedModel(), metadata={"prices": prices})


def test_request_record_reaches_hooks(manager: LLMManager) -> None:
    """A hook sees each finished request's attempts, route, request and response."""
    seen: list[RequestFinished] = []
    manager.add_hook(lambda e: seen.append(e) if isinstance(e, RequestFinished) else None)
    manager.register_model("m", ScriptedModel(default="fine"))
    manager.chat("hi", temperature=0.5)
    (event,) = seen
    assert event.route == ("m",)
    assert [a.model for a in event.attempts] == ["m"]
    assert event.request is not None and event.request.temperature == 0.5
    assert event.response is not None and event.response.text == "fine"


@pytest.mark.parametrize(
    ("module", "extra"),
    [("reliable_llm.otel", "otel"), ("reliable_llm.prometheus", "prometheus")],
)
def test_missing_exporter_dependency_names_the_extra(
    manager: LLMManager, monkeypatch: pytest.MonkeyPatch, module: str, extra: str
) -> None:
    """Without its optional dependency, instrument() says which extra to install."""
    import importlib

    exporter = importlib.import_module(module)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigurationError, match=rf"reliable-llm\[{extra}\]"):
        exporter.instrument(manager)


def test_cached_input_tokens_are_charged_the_cached_price(manager: LLMManager) -> None:
    """Input tokens the provider read from its prompt cache cost the cached-input price."""
    answer = ChatResponse("ok", usage=Usage(1000, 100, cache_read_tokens=800))
    manager.register_model(
        "m",
        ScriptedModel(default=answer),
        metadata={"prices": {"input": 2.0, "output": 8.0, "cached_input": 0.5}},
    )
    response = manager.chat("hi")
    assert response.cost == pytest.approx((200 * 2.0 + 800 * 0.5 + 100 * 8.0) / 1e6)


def test_token_details_survive_the_cache(manager: LLMManager) -> None:
    """Cache-read, cache-creation and reasoning counts come back from a cached answer."""
    usage = Usage(1000, 100, cache_read_tokens=800, cache_creation_tokens=50, reasoning_tokens=60)
    manager.register_model("m", ScriptedModel(default=ChatResponse("ok", usage=usage)))
    manager.chat("hi")
    assert manager.chat("hi").usage == usage
