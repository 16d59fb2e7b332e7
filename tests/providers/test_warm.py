"""warm(): SDK import and client construction happen before the first attempt, not in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reliable_llm import ChatRequest, Message
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing.fake_server import FakeLLMServer
from tests.providers.conftest import KINDS, Target

REQUEST = ChatRequest((Message.user("hi"),))


def _forbid_construction(provider: SDKProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a client was built inside an attempt")

    monkeypatch.setattr(provider, "_make_client", refuse)


@pytest.mark.parametrize("kind", KINDS)
async def test_warmed_provider_builds_no_client_inside_an_attempt(
    kind: str, target: Callable[..., Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After warm(), the first sync and the first async call reuse the clients built by warm."""
    provider = target(kind).provider
    assert isinstance(provider, SDKProvider)
    provider.warm()
    _forbid_construction(provider, monkeypatch)

    assert provider.complete(REQUEST).text == "ok"
    assert (await provider.acomplete(REQUEST)).text == "ok"


def test_warm_twice_builds_once(server: FakeLLMServer, target: Callable[..., Target]) -> None:
    """A second warm() is cheap: it builds nothing new."""
    provider = target("openai").provider
    assert isinstance(provider, SDKProvider)
    provider.warm()
    built = (provider.sync_client(), provider._spare_async_client)

    provider.warm()

    assert (provider.sync_client(), provider._spare_async_client) == built


async def test_warmed_async_client_is_closed_by_aclose(target: Callable[..., Target]) -> None:
    """An adopted-by-no-loop async client is closed with the provider, not leaked."""
    provider = target("anthropic").provider
    assert isinstance(provider, SDKProvider)
    provider.warm()
    spare = provider._spare_async_client

    await provider.aclose()

    assert spare.is_closed()
    assert provider._spare_async_client is None
