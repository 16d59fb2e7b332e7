"""HTTP 200 is not proof of success: judging a decoded answer before it is returned.

Both protocols' decoders, streaming and not, end here, so a content-filtered answer, a
``finish_reason: "error"``, an in-band error object or an empty answer fails the same way
whichever way it arrived, and is never returned (nor cached) as an answer. Refusals are
answers: their text is returned with the finish reason ``"refusal"``.
"""

from __future__ import annotations

from collections.abc import Mapping

from reliable_llm._errors import (
    ContentPolicyError,
    EmptyResponseError,
    ProviderError,
    ServerError,
)
from reliable_llm._http_errors import class_for_status, error_fields

__all__ = ["REFUSAL", "check_answer", "in_band_error"]

#: The finish reason of a refusal returned as text.
REFUSAL = "refusal"


def check_answer(has_text: bool, has_calls: bool, finish: str, provider: str) -> None:
    """Raise if a complete, decoded answer is a failure in disguise.

    Args:
        has_text: Whether the answer has text (a refusal's text included).
        has_calls: Whether it requested tool calls.
        finish: Its normalized finish reason.
        provider: The provider name, for the error.

    Raises:
        ContentPolicyError: The provider's content filter stopped or emptied the answer.
        ServerError: ``finish_reason`` was ``"error"`` (the upstream failed mid-answer).
        EmptyResponseError: The answer has neither text nor tool calls (breaker neutral).
    """
    if finish == "content_filter":
        raise ContentPolicyError(
            "the provider's content filter stopped the answer (finish_reason content_filter)",
            provider=provider,
        )
    if finish == "error":
        raise ServerError(
            "the upstream failed while answering (finish_reason error)", provider=provider
        )
    if not has_text and not has_calls and finish != REFUSAL:
        raise EmptyResponseError(
            f"empty answer: neither text nor tool calls (finish_reason {finish})",
            provider=provider,
        )


def in_band_error(error: object, provider: str) -> ProviderError:
    """Our error for an error object sent inside a 200 response (OpenRouter, gateways).

    A numeric ``code`` in the HTTP range is read as the status the upstream failed with.
    """
    kind, code, message = error_fields({"error": error} if isinstance(error, Mapping) else error)
    status = int(code) if code is not None and code.isdigit() and 400 <= int(code) <= 599 else None
    text = message or "an error object in a successful response"
    error_class = class_for_status(status, kind, code, text)
    return error_class(f"error in a 200 response: {text}", provider=provider)
