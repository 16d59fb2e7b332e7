"""Cost and the provider's response id in ReliableLLM's additional_kwargs."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.llms.reliable import ReliableLLM

from reliable_llm import ChatResponse, Usage
from reliable_llm.testing import ScriptedModel


def test_chat_reports_cost_and_response_id() -> None:
    """An answer's cost (from the model's prices) and provider id reach additional_kwargs."""
    answer = ChatResponse("ok", usage=Usage(10, 5), response_id="msg_9")
    llm = ReliableLLM(models={"m": ScriptedModel(default=answer)}, enable_caching=False)
    llm.manager.register_model(
        "m",
        ScriptedModel(default=answer),
        metadata={"prices": {"input": 1.0, "output": 4.0}},
        replace=True,
    )
    response = llm.chat([ChatMessage(role=MessageRole.USER, content="hi")])
    assert response.additional_kwargs["cost"] == pytest.approx(30 / 1e6)
    assert response.additional_kwargs["id"] == "msg_9"
