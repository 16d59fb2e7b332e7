"""Cost and the provider's response id in ReliableChatModel's response metadata."""

from __future__ import annotations

import pytest
from langchain_reliable_llm import ReliableChatModel

from reliable_llm import ChatResponse, LLMManager, Usage
from reliable_llm.testing import FakeClock, ScriptedModel


def test_invoke_reports_cost_and_response_id() -> None:
    """An answer's cost (from the model's prices) and provider id reach response_metadata."""
    manager = LLMManager(clock=FakeClock())
    answer = ChatResponse("ok", usage=Usage(10, 5), response_id="chatcmpl-9")
    manager.register_model(
        "m", ScriptedModel(default=answer), metadata={"prices": {"input": 1.0, "output": 4.0}}
    )
    metadata = ReliableChatModel(manager=manager).invoke("hi").response_metadata
    assert metadata["cost"] == pytest.approx(30 / 1e6)
    assert metadata["id"] == "chatcmpl-9"
