"""The classification table: which error an HTTP failure becomes, by what it carries.

Each `ErrorRule` names an error class and the status, error ``type``, error ``code`` and
message wording that select it. The first matching rule wins: rules added with
`add_error_rule` come first, then the built-in ones, and a failure no rule matches is judged
by its status alone. Extending the table needs no subclass::

    from reliable_llm import ContextWindowExceededError, ErrorRule, add_error_rule

    add_error_rule(ErrorRule(ContextWindowExceededError, phrases=("prompt exceeds",)))

The built-in wording covers the providers we ship presets for and the common gateways
(LiteLLM proxy, OpenRouter). Messages are compared in lower case.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass

from reliable_llm._errors import (
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    OverloadedError,
    ProviderError,
    ProviderUnavailableError,
)

__all__ = ["ErrorRule", "add_error_rule", "error_rules", "match_rule", "remove_error_rule"]

#: Statuses under which a request's own content is rejected (``None``: an in-band error).
_REJECTED: frozenset[int | None] = frozenset((400, 403, 413, 422, None))


@dataclass(frozen=True)
class ErrorRule:
    """One line of the classification table.

    A rule matches when every criterion it sets matches: ``statuses`` holds the HTTP status
    (``None`` stands for an error sent inside a 200 response), ``types`` the error body's
    ``type``, ``codes`` its ``code``, and the message contains one of ``phrases``
    (case-insensitive). An unset criterion matches anything.

    Attributes:
        error: The `ProviderError` subclass a matching failure becomes.
        statuses: HTTP statuses the rule applies to; empty: any.
        types: Error ``type`` values; empty: any.
        codes: Error ``code`` values (compared as text); empty: any.
        phrases: Lower-case fragments of the message, any of which matches; empty: any.

    Raises:
        ConfigurationError: ``error`` is not a `ProviderError` subclass, or the rule sets
            no criterion (it would match every failure).
    """

    error: type[ProviderError]
    statuses: Collection[int | None] = frozenset()
    types: Collection[str] = frozenset()
    codes: Collection[str] = frozenset()
    phrases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (isinstance(self.error, type) and issubclass(self.error, ProviderError)):
            raise ConfigurationError(
                f"ErrorRule error must be a ProviderError subclass, got {self.error!r}"
            )
        if not (self.statuses or self.types or self.codes or self.phrases):
            raise ConfigurationError(
                "ErrorRule needs at least one of statuses=, types=, codes= or phrases="
            )
        object.__setattr__(self, "statuses", frozenset(self.statuses))
        object.__setattr__(self, "types", frozenset(self.types))
        object.__setattr__(self, "codes", frozenset(str(code) for code in self.codes))
        object.__setattr__(self, "phrases", tuple(p.lower() for p in self.phrases))

    def matches(self, status: int | None, kind: str | None, code: str | None, text: str) -> bool:
        """Whether a failure with these fields (``text`` in lower case) is this rule's."""
        return (
            (not self.statuses or status in self.statuses)
            and (not self.types or kind in self.types)
            and (not self.codes or code in self.codes)
            and (not self.phrases or any(p in text for p in self.phrases))
        )


_CONTEXT_PHRASES = (
    "context length",  # OpenAI, Azure, vLLM, DeepSeek, OpenRouter: "maximum context length"
    "context window",
    "context_length",
    "context limit",  # Anthropic: "input length and `max_tokens` exceed context limit"
    "prompt is too long",  # Anthropic, Fireworks
    "too large for model with",  # Mistral
    "maximum model length",  # vLLM: "longer than the maximum model length"
    "maximum prompt length",  # xAI
    "available context size",  # llama.cpp server
    "context the overflows",  # LM Studio
    "exceeds the maximum number of tokens",  # Gemini OpenAI-compatible endpoint
    "input tokens exceed the configured limit",  # OpenAI
    "reduce the length of the messages",  # Groq, Cerebras
    "too many tokens",
    "contextwindowexceedederror",  # LiteLLM proxy: "litellm.ContextWindowExceededError: ..."
)
_CONTENT_PHRASES = (
    "content management policy",  # Azure OpenAI
    "content policy",
    "content filter",
    "safety system",  # OpenAI: "rejected as a result of our safety system"
    "requires moderation",  # OpenRouter: "...requires moderation... your input was flagged"
    "contentpolicyviolationerror",  # LiteLLM proxy
)

BUILT_IN_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(ProviderUnavailableError, codes=("insufficient_quota",)),
    ErrorRule(
        ContextWindowExceededError,
        codes=("context_length_exceeded", "string_above_max_length"),
    ),
    ErrorRule(ContextWindowExceededError, types=("exceed_context_size_error",)),
    ErrorRule(ContextWindowExceededError, statuses=_REJECTED, phrases=_CONTEXT_PHRASES),
    ErrorRule(
        ContentPolicyError,
        codes=("content_filter", "content_policy_violation", "ResponsibleAIPolicyViolation"),
    ),
    ErrorRule(ContentPolicyError, statuses=_REJECTED, phrases=_CONTENT_PHRASES),
    ErrorRule(OverloadedError, statuses=(529,)),
    ErrorRule(OverloadedError, types=("overloaded_error",)),
)

_lock = threading.Lock()
_user_rules: tuple[ErrorRule, ...] = ()
_rules: tuple[ErrorRule, ...] = BUILT_IN_RULES


def add_error_rule(rule: ErrorRule) -> None:
    """Put ``rule`` ahead of every rule already in the table (the newest wins).

    Raises:
        ConfigurationError: ``rule`` is not an `ErrorRule`.
    """
    if not isinstance(rule, ErrorRule):
        raise ConfigurationError(f"add_error_rule expects an ErrorRule, got {rule!r}")
    global _user_rules, _rules
    with _lock:
        _user_rules = (rule, *_user_rules)
        _rules = _user_rules + BUILT_IN_RULES


def remove_error_rule(rule: ErrorRule) -> None:
    """Take a rule added with `add_error_rule` out of the table; unknown rules are ignored."""
    global _user_rules, _rules
    with _lock:
        _user_rules = tuple(r for r in _user_rules if r is not rule)
        _rules = _user_rules + BUILT_IN_RULES


def error_rules() -> tuple[ErrorRule, ...]:
    """The whole table in the order it is consulted: added rules, then the built-in ones."""
    return _rules


def match_rule(
    status: int | None, kind: str | None, code: str | None, message: str
) -> type[ProviderError] | None:
    """The error class of the first rule matching these fields, or None."""
    text = message.lower()
    for rule in _rules:
        if rule.matches(status, kind, code, text):
            return rule.error
    return None
