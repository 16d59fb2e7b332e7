"""Attributes both OpenTelemetry signals share: an attempt's GenAI attributes, a response's
usage and a request's own ``reliable_llm.*`` summary.

Names follow the OpenTelemetry GenAI semantic conventions, which moved from
open-telemetry/semantic-conventions (v1.44.0 marks them "moved") to
open-telemetry/semantic-conventions-genai. The cache-write count is
``gen_ai.usage.cache_write.input_tokens``: the genai repository renamed it from
``cache_creation`` in PR #440 (changelog.d/440.breaking.md, commit b9449702, not yet in a
release; semantic-conventions v1.44.0 still lists ``cache_creation`` as moved there).
``gen_ai.token.type`` keeps the two well-known values ``input`` and ``output``: cached and
reasoning tokens are parts of those totals, not token types.
"""

from __future__ import annotations

from typing import Any

from reliable_llm._errors import FailureReason
from reliable_llm._events import RequestFinished
from reliable_llm._observe import ModelFacts, error_type, outcome
from reliable_llm._types import Attempt, ChatResponse

__all__ = [
    "CHAT",
    "USAGE_CACHE_READ",
    "USAGE_CACHE_WRITE",
    "USAGE_REASONING",
    "genai_attributes",
    "request_summary",
    "response_attributes",
]

CHAT = "chat"  # gen_ai.operation.name
_CIRCUIT_OPEN = FailureReason.CIRCUIT_OPEN
_DEADLINE = FailureReason.DEADLINE_EXCEEDED

# semantic-conventions-genai model/gen-ai/registry.yaml (see the module docstring).
USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_WRITE = "gen_ai.usage.cache_write.input_tokens"
USAGE_REASONING = "gen_ai.usage.reasoning.output_tokens"


def genai_attributes(
    attempt: Attempt, response: ChatResponse | None, facts: ModelFacts
) -> dict[str, Any]:
    """The attributes an attempt's span and its metrics share."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": CHAT,
        "gen_ai.provider.name": facts.provider,
        "gen_ai.request.model": facts.request_model,
    }
    if response is not None:
        attributes["gen_ai.response.model"] = response.provider_model or facts.request_model
    elif attempt.error is not None:
        attributes["error.type"] = error_type(attempt.error)
    return attributes


def request_summary(event: RequestFinished) -> dict[str, Any]:
    """Our own attributes of one logical request (no ``gen_ai.*``: it is not a GenAI call)."""
    failures = event.failures
    attributes: dict[str, Any] = {
        "reliable_llm.request.model": event.requested_model,
        "reliable_llm.route": event.route,
        "reliable_llm.outcome": outcome(event.model, event.cancelled),
        "reliable_llm.cache.hit": False,
        "reliable_llm.stream": event.stream,
        "reliable_llm.attempts": len(event.attempts),
        "reliable_llm.retries": sum(1 for a in event.attempts if a.number > 1),
        "reliable_llm.fallback.models": tuple(f.model for f in failures),
        "reliable_llm.fallback.reasons": tuple(str(f.reason) for f in failures),
        "reliable_llm.breaker.rejections": sum(1 for f in failures if f.reason is _CIRCUIT_OPEN),
        "reliable_llm.timeout": event.timeout,
        "reliable_llm.deadline_exceeded": bool(failures) and failures[-1].reason is _DEADLINE,
    }
    if event.model is not None:
        attributes["reliable_llm.response.model"] = event.model
    response = event.response
    if response is not None and response.cost is not None:
        attributes["reliable_llm.cost"] = response.cost
    return attributes


def response_attributes(response: ChatResponse) -> dict[str, Any]:
    """An answer's finish reason, id, token usage and cost."""
    attributes: dict[str, Any] = {
        "gen_ai.response.finish_reasons": (response.finish_reason,),
    }
    if response.response_id is not None:
        attributes["gen_ai.response.id"] = response.response_id
    usage = response.usage
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        if usage.cache_read_tokens:
            attributes[USAGE_CACHE_READ] = usage.cache_read_tokens
        if usage.cache_creation_tokens:
            attributes[USAGE_CACHE_WRITE] = usage.cache_creation_tokens
        if usage.reasoning_tokens:
            attributes[USAGE_REASONING] = usage.reasoning_tokens
    if response.cost is not None:
        attributes["reliable_llm.cost"] = response.cost
    return attributes
