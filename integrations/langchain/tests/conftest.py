"""Fixtures for the LangChain integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from langchain_tests.integration_tests import chat_models as standard_suite
from sample_media import pdf_bytes, png_bytes, wav_bytes

# What the standard suite's multimodal tests download (langchain-tests 1.1), served from
# local files of the same formats so the suite runs offline.
STANDARD_MEDIA = {
    "https://raw.githubusercontent.com/langchain-ai/docs/4d11d08b6b0e210bd456943f7a22febbd168b543"
    "/src/images/agentic-rag-output.png": (png_bytes(), "image/png"),
    "https://www.w3.org/WAI/ER/tests/xhtml/testfiles/resources/pdf/dummy.pdf": (
        pdf_bytes(),
        "application/pdf",
    ),
    "https://upload.wikimedia.org/wikipedia/commons/6/6a/Northern_Flicker_202280456.wav": (
        wav_bytes(),
        "audio/wav",
    ),
}


def _offline_get(url: str, **_: Any) -> httpx.Response:
    if url not in STANDARD_MEDIA:
        raise AssertionError(f"the standard suite fetched an unexpected URL: {url}")
    content, media_type = STANDARD_MEDIA[url]
    request = httpx.Request("GET", url)
    return httpx.Response(
        200, content=content, headers={"content-type": media_type}, request=request
    )


@pytest.fixture
def offline_standard_media(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The standard suite's media downloads answered locally (no network in tests)."""
    monkeypatch.setattr(standard_suite, "httpx", SimpleNamespace(get=_offline_get))
    monkeypatch.setenv("LANGCHAIN_TESTS_USER_AGENT", "reliable-llm-tests/0 (offline)")
    yield
