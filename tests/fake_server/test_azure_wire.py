"""The official AzureOpenAI client against the fake's deployment routes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from reliable_llm.testing.fake_server import FakeLLMServer, Reply, rate_limited

DEPLOYMENT = "my-gpt4o-deployment"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]


def test_deployment_is_the_scripted_model(
    server: FakeLLMServer, azure_client: openai.AzureOpenAI, azure_api_version: str
) -> None:
    """Azure requests are scripted and logged under the deployment name from the path."""
    server.script(DEPLOYMENT, Reply("from azure", usage=(4, 2)))

    completion = azure_client.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)

    assert completion.choices[0].message.content == "from azure"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 6
    (request,) = server.requests
    assert request.protocol == "azure"
    assert request.model == DEPLOYMENT
    assert request.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert request.query["api-version"] == azure_api_version
    assert request.headers["api-key"] == "azure-test"


def test_streaming(server: FakeLLMServer, azure_client: openai.AzureOpenAI) -> None:
    """Azure streams end with a finish_reason and the optional usage chunk."""
    server.script(DEPLOYMENT, Reply("streamed from azure", chunk_size=6))

    chunks = list(
        azure_client.chat.completions.create(
            model=DEPLOYMENT,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed from azure"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None


def test_rate_limit(server: FakeLLMServer, azure_client: openai.AzureOpenAI) -> None:
    """Azure 429s raise RateLimitError with the retry-after header."""
    server.script(DEPLOYMENT, rate_limited(retry_after="3"))

    with pytest.raises(openai.RateLimitError) as caught:
        azure_client.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)

    assert caught.value.response.headers["retry-after"] == "3"


def test_missing_api_version_is_404(server: FakeLLMServer) -> None:
    """Without ?api-version= Azure answers 404 "Resource not found", as the real one does."""
    request = urllib.request.Request(
        f"{server.azure_endpoint}/openai/deployments/{DEPLOYMENT}/chat/completions",
        data=json.dumps({"messages": MESSAGES}).encode(),
        headers={"content-type": "application/json"},
    )

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    with caught.value as response:
        assert response.status == 404
        assert json.load(response) == {"error": {"code": "404", "message": "Resource not found"}}
    assert server.pending(DEPLOYMENT) == 0
    assert server.request_count(DEPLOYMENT) == 1
