"""reliable-llm: dependable LLM calls.

Per-model circuit breakers, retries with exponential backoff, a fallback chain across models
and providers, response caching and metrics, behind one small API: `LLMManager`.
"""

from __future__ import annotations

import logging

from reliable_llm._breaker import BreakerState
from reliable_llm._cache import CacheBackend, InMemoryCache, cache_key
from reliable_llm._callable import CallableProvider
from reliable_llm._capabilities import ModelCapabilities
from reliable_llm._chatstream import AsyncChatStream, ChatStream
from reliable_llm._classify import ErrorClassifier
from reliable_llm._clock import Clock, SystemClock
from reliable_llm._content import (
    AudioPart,
    CacheControl,
    ContentChange,
    FilePart,
    ImagePart,
    Part,
    ReasoningPart,
    TextPart,
)
from reliable_llm._deployments import Deployment
from reliable_llm._error_rules import ErrorRule, add_error_rule, error_rules, remove_error_rule
from reliable_llm._errors import (
    AllModelsFailedError,
    AuthenticationError,
    CacheKeyError,
    CircuitOpenError,
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    EmptyResponseError,
    FailureReason,
    InvalidRequestError,
    InvalidResponseError,
    LocalRateLimitError,
    MissingAPIKeyError,
    ModelFailure,
    ModelNotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    ReliableLLMError,
    RequestRejectedError,
    ServerError,
    StreamInterruptedError,
    TransientError,
    UnknownModelError,
)
from reliable_llm._history import MetricsHistory
from reliable_llm._http_errors import classify_http_error
from reliable_llm._manager import LLMManager
from reliable_llm._policies import (
    BreakerPolicy,
    CachePolicy,
    HedgePolicy,
    RetryPolicy,
    TimeoutPolicy,
)
from reliable_llm._provider import Provider
from reliable_llm._render import MetricsSnapshot
from reliable_llm._stream import StreamAccumulator, ToolCallAssembler, response_to_chunks
from reliable_llm._types import (
    Attempt,
    ChatRequest,
    ChatResponse,
    Message,
    StreamChunk,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__version__ = "0.1.0"

# Library convention: log records go nowhere unless the application configures logging.
logging.getLogger("reliable_llm").addHandler(logging.NullHandler())

__all__ = [
    "AllModelsFailedError",
    "AsyncChatStream",
    "Attempt",
    "AudioPart",
    "AuthenticationError",
    "BreakerPolicy",
    "BreakerState",
    "CacheBackend",
    "CacheControl",
    "CacheKeyError",
    "CachePolicy",
    "CallableProvider",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "CircuitOpenError",
    "Clock",
    "ConfigurationError",
    "ContentChange",
    "ContentPolicyError",
    "ContextWindowExceededError",
    "Deployment",
    "EmptyResponseError",
    "ErrorClassifier",
    "ErrorRule",
    "FailureReason",
    "FilePart",
    "HedgePolicy",
    "ImagePart",
    "InMemoryCache",
    "InvalidRequestError",
    "InvalidResponseError",
    "LLMManager",
    "LocalRateLimitError",
    "Message",
    "MetricsHistory",
    "MetricsSnapshot",
    "MissingAPIKeyError",
    "ModelCapabilities",
    "ModelFailure",
    "ModelNotFoundError",
    "OverloadedError",
    "Part",
    "PermissionDeniedError",
    "Provider",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitError",
    "ReasoningPart",
    "ReliableLLMError",
    "RequestRejectedError",
    "RetryPolicy",
    "ServerError",
    "StreamAccumulator",
    "StreamChunk",
    "StreamInterruptedError",
    "SystemClock",
    "TextPart",
    "TimeoutPolicy",
    "Tool",
    "ToolCall",
    "ToolCallAssembler",
    "ToolCallDelta",
    "TransientError",
    "UnknownModelError",
    "Usage",
    "__version__",
    "add_error_rule",
    "cache_key",
    "classify_http_error",
    "error_rules",
    "remove_error_rule",
    "response_to_chunks",
]
