"""ReliableChatModel with content beyond text: media, reasoning, prompt-cache usage."""

from __future__ import annotations

from langchain_reliable_llm import ReliableChatModel

from reliable_llm import ChatResponse, Usage
from reliable_llm.testing import ScriptedModel


def test_usage_reports_prompt_cache_and_reasoning_token_details() -> None:
    """Cache-read, cache-written and reasoning tokens appear in LangChain's usage details."""
    answer = ChatResponse("ok", usage=Usage(120, 40, 100, 15, 30))
    model = ReliableChatModel(models={"m": ScriptedModel(default=answer)})
    usage = model.invoke("hi").usage_metadata
    assert usage == {
        "input_tokens": 120,
        "output_tokens": 40,
        "total_tokens": 160,
        "input_token_details": {"cache_read": 100, "cache_creation": 15},
        "output_token_details": {"reasoning": 30},
    }


def test_usage_without_details_has_no_detail_keys() -> None:
    """A provider that reports only totals gives LangChain only totals, as before."""
    model = ReliableChatModel(models={"m": ScriptedModel(default=ChatResponse("ok", usage=Usage(3, 4)))})
    assert model.invoke("hi").usage_metadata == {
        "input_tokens": 3,
        "output_tokens": 4,
        "total_tokens": 7,
    }
