"""The curated public surface, the import cost and the layering rule."""

from __future__ import annotations

import ast
import subprocess
import sys

import reliable_llm
import reliable_llm.testing

PUBLIC = [
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


def test_all_is_sorted_and_pinned() -> None:
    """__all__ is sorted, every name exists, and nothing public is added by accident."""
    assert reliable_llm.__all__ == sorted(reliable_llm.__all__)
    for name in reliable_llm.__all__:
        assert hasattr(reliable_llm, name), name
    assert reliable_llm.__all__ == PUBLIC


def test_testing_kit_surface() -> None:
    """The testing kit exports the scripted model and fake clock."""
    assert reliable_llm.testing.__all__ == ["FakeClock", "Reply", "ScriptedModel", "StreamBreak"]


def test_backends_surface_loads_lazily() -> None:
    """`reliable_llm.backends` names its backends and imports none (nor sqlite3) until used."""
    import reliable_llm.backends

    assert reliable_llm.backends.__all__ == ["RedisState", "SQLiteCache"]
    assert _modules_loaded_by("import reliable_llm.backends", ("sqlite3", "redis")) == []


def test_events_surface() -> None:
    """`reliable_llm.events` exports every event, the shared-state ones included, sorted."""
    import reliable_llm.events

    names = reliable_llm.events.__all__
    assert names == sorted(names)
    assert {"SharedStateDegraded", "SharedStateRecovered"} <= set(names)


def test_the_manager_without_shared_state_imports_no_backend() -> None:
    """An LLMManager without shared_state never loads the Redis backend (redis-py itself may
    be loaded: pybreaker imports it whenever it is installed)."""
    statement = (
        "import reliable_llm; reliable_llm.LLMManager().register_model('m', lambda p, **k: p)"
    )
    modules = ("reliable_llm.backends._redis", "reliable_llm.backends._redis_link")
    assert _modules_loaded_by(statement, modules) == []


def _modules_loaded_by(statement: str, names: tuple[str, ...]) -> list[str]:
    code = f"import sys; {statement}; print([m for m in {names!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout))


def test_import_loads_no_sdk_or_framework() -> None:
    """`import reliable_llm` (and its testing kit) imports no provider SDK and no framework."""
    heavy = ("openai", "anthropic", "httpx", "langchain_core", "llama_index", "pydantic")
    assert _modules_loaded_by("import reliable_llm, reliable_llm.testing", heavy) == []


def test_import_of_the_core_defers_asyncio() -> None:
    """`import reliable_llm` does not even import asyncio (it is loaded on first async use)."""
    assert _modules_loaded_by("import reliable_llm", ("asyncio", "email.utils")) == []


def test_core_source_never_names_the_frameworks() -> None:
    """No module of the core package imports langchain or llama_index."""
    from pathlib import Path

    root = Path(reliable_llm.__file__).parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if any(
            line.lstrip().startswith(
                ("import langchain", "from langchain", "import llama_index", "from llama_index")
            )
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []


def test_cli_help_and_unknown_command() -> None:
    """The command line prints usage and rejects unknown commands."""
    from reliable_llm.__main__ import main

    assert main(["--help"]) == 0
    assert main(["nonsense"]) == 2
