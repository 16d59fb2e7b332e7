"""LangChain integration for reliable-llm: `ReliableChatModel`, a real LangChain chat model.

Circuit breakers, retries, fallbacks, caching and metrics from `reliable_llm.LLMManager`,
usable anywhere LangChain expects a ``BaseChatModel`` (chains, agents, ``bind_tools``,
``with_structured_output``). `LangChainChatProvider` lets any existing LangChain chat model
(``ChatOpenAI``, ``ChatAnthropic``, ...) serve as one of the manager's models.
"""

from __future__ import annotations

from langchain_reliable_llm._chat_model import ReliableChatModel
from langchain_reliable_llm._classify import classify_langchain_error
from langchain_reliable_llm._errors import (
    ReliableAPIError,
    ReliableAuthenticationError,
    ReliableChatModelError,
    ReliableConnectionError,
    ReliableContextOverflowError,
    ReliableInvalidRequestError,
    ReliableModelNotFoundError,
    ReliablePermissionDeniedError,
    ReliableRateLimitError,
    ReliableStreamInterruptedError,
    ReliableTimeoutError,
)
from langchain_reliable_llm._provider import LangChainChatProvider, without_sdk_retries

__version__ = "0.1.0"

__all__ = [
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
