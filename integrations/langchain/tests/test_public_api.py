"""The public surface of langchain-reliable-llm is deliberate and pinned."""

from __future__ import annotations

import subprocess
import sys

import langchain_reliable_llm
from langchain_reliable_llm import testing


def test_public_names_are_pinned() -> None:
    """__all__ lists exactly the supported names, sorted, and each one resolves."""
    assert langchain_reliable_llm.__all__ == [
        "LangChainChatProvider",
        "ReliableAPIError",
        "ReliableAuthenticationError",
        "ReliableChatModel",
        "ReliableChatModelError",
        "ReliableConnectionError",
        "ReliableContextOverflowError",
        "ReliableInvalidRequestError",
        "ReliableModelNotFoundError",
        "ReliablePermissionDeniedError",
        "ReliableRateLimitError",
        "ReliableStreamInterruptedError",
        "ReliableTimeoutError",
        "__version__",
        "classify_langchain_error",
        "without_sdk_retries",
    ]
    for name in langchain_reliable_llm.__all__:
        assert getattr(langchain_reliable_llm, name) is not None
    assert testing.__all__ == ["SmartFakeModel"]


def test_importing_the_package_loads_no_provider_sdk() -> None:
    """Importing the package does not import openai or anthropic (they load only when used)."""
    code = (
        "import sys, langchain_reliable_llm, langchain_reliable_llm.testing; "
        "print(sorted(m for m in ('openai', 'anthropic') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
