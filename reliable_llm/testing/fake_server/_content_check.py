"""Content-part checks: the fake server rejects, with a 400, part shapes the real API rejects.

The shapes are those of the official SDKs' request types (``openai.types.chat``'s
``ChatCompletionContentPart*Param`` and ``ChatCompletion*MessageParam``; ``anthropic.types``'
``*BlockParam`` and ``*SourceParam``). A client that sends a field the API does not know (a
Claude ``cache_control`` marker or a ``thinking`` block to OpenAI, an ``image_url`` part to
Anthropic) gets the 400 a real server would send, so a test passes only if the client never
sends one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["anthropic_content_problem", "openai_content_problem"]

# -- OpenAI Chat Completions ---------------------------------------------------------------

_MARK = "prompt_cache_breakpoint"  # OpenAI's own explicit cache breakpoint (openai >= 3.5x)
_OPENAI_PARTS: dict[str, dict[str, frozenset[str]]] = {
    "text": {"": frozenset(("type", "text", _MARK))},
    "image_url": {
        "": frozenset(("type", "image_url", _MARK)),
        "image_url": frozenset(("url", "detail")),
    },
    "input_audio": {
        "": frozenset(("type", "input_audio", _MARK)),
        "input_audio": frozenset(("data", "format")),
    },
    "file": {
        "": frozenset(("type", "file", _MARK)),
        "file": frozenset(("file_data", "file_id", "filename")),
    },
    "refusal": {"": frozenset(("type", "refusal"))},
}
_OPENAI_ROLE_PARTS = {
    "system": frozenset(("text",)),
    "developer": frozenset(("text",)),
    "user": frozenset(("text", "image_url", "input_audio", "file")),
    "assistant": frozenset(("text", "refusal")),
    "tool": frozenset(("text",)),
}


def _unknown(allowed: frozenset[str], value: Mapping[str, Any]) -> str | None:
    extra = sorted(set(value) - allowed)
    return extra[0] if extra else None


def openai_content_problem(body: Mapping[str, Any]) -> str | None:
    """OpenAI's 400 message for the first content part it would reject, or None."""
    for i, message in enumerate(body.get("messages") or ()):
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        role = message.get("role")
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, Mapping) else None
            shape = _OPENAI_PARTS.get(kind) if isinstance(kind, str) else None
            if shape is None or kind not in _OPENAI_ROLE_PARTS.get(str(role), frozenset()):
                return f"Invalid value: '{kind}'. Supported values are: {_supported(role)}."
            name = _unknown(shape[""], part)
            if name is not None:
                return f"Unknown parameter: '{where}.{name}'."
            for field, allowed in shape.items():
                if field and isinstance(part.get(field), Mapping):
                    name = _unknown(allowed, part[field])
                    if name is not None:
                        return f"Unknown parameter: '{where}.{field}.{name}'."
            problem = _openai_payload(kind, part, where)
            if problem is not None:
                return problem
    return None


def _supported(role: object) -> str:
    kinds = sorted(_OPENAI_ROLE_PARTS.get(str(role), frozenset()))
    return ", ".join(f"'{k}'" for k in kinds) or "none"


def _openai_payload(kind: str, part: Mapping[str, Any], where: str) -> str | None:
    if kind == "image_url":
        url = (part.get("image_url") or {}).get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:image/")):
            return f"Invalid '{where}.image_url.url': expected a URL or a base64 data URL."
    elif kind == "input_audio":
        audio = part.get("input_audio") or {}
        if audio.get("format") not in ("wav", "mp3") or not isinstance(audio.get("data"), str):
            return f"Invalid '{where}.input_audio': 'format' must be 'wav' or 'mp3', with 'data'."
    elif kind == "file":
        file = part.get("file") or {}
        data = file.get("file_data")
        if data is None and file.get("file_id") is None:
            return f"Missing required parameter: '{where}.file.file_data' or 'file_id'."
        if data is not None and not (isinstance(data, str) and data.startswith("data:")):
            return f"Invalid '{where}.file.file_data': expected a base64 data URL."
    return None


# -- Anthropic Messages --------------------------------------------------------------------

_ANTHROPIC_BLOCKS = {
    "text": frozenset(("type", "text", "cache_control", "citations")),
    "image": frozenset(("type", "source", "cache_control")),
    "document": frozenset(("type", "source", "title", "context", "citations", "cache_control")),
    "thinking": frozenset(("type", "thinking", "signature")),
    "redacted_thinking": frozenset(("type", "data")),
    "tool_use": frozenset(("type", "id", "name", "input", "cache_control")),
    "tool_result": frozenset(("type", "tool_use_id", "content", "is_error", "cache_control")),
}
_SOURCES = {
    "image": {
        "base64": frozenset(("type", "media_type", "data")),
        "url": frozenset(("type", "url")),
        "file": frozenset(("type", "file_id")),
    },
    "document": {
        "base64": frozenset(("type", "media_type", "data")),
        "text": frozenset(("type", "media_type", "data")),
        "url": frozenset(("type", "url")),
        "file": frozenset(("type", "file_id")),
    },
}
_IMAGE_TYPES = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))
_RESULT_BLOCKS = frozenset(("text", "image", "document"))


def anthropic_content_problem(body: Mapping[str, Any]) -> str | None:
    """Anthropic's 400 message for the first block it would reject, or None."""
    system = body.get("system")
    if isinstance(system, list):
        for j, block in enumerate(system):
            if not isinstance(block, Mapping) or block.get("type") != "text":
                return f"system.{j}.type: Input should be 'text'"
            problem = _block(block, f"system.{j}")
            if problem is not None:
                return problem
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            problem = _block(block, where)
            if problem is not None:
                return problem
            if block.get("type") in ("thinking", "redacted_thinking") and (
                message.get("role") != "assistant"
            ):
                return f"{where}: thinking blocks may only appear in assistant messages"
    return None


def _block(block: object, where: str) -> str | None:
    kind = block.get("type") if isinstance(block, Mapping) else None
    allowed = _ANTHROPIC_BLOCKS.get(kind) if isinstance(kind, str) else None
    if allowed is None or not isinstance(block, Mapping):
        return (
            f"{where}.type: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags"
        )
    name = _unknown(allowed, block)
    if name is not None:
        return f"{where}.{name}: Extra inputs are not permitted"
    control = block.get("cache_control")
    if control is not None and (
        not isinstance(control, Mapping)
        or control.get("type") != "ephemeral"
        or control.get("ttl", "5m") not in ("5m", "1h")
    ):
        return f"{where}.cache_control: Input should be {{'type': 'ephemeral'}}"
    if kind == "thinking" and not (isinstance(block.get("signature"), str) and block["signature"]):
        return f"{where}.thinking.signature: Field required"
    if kind in _SOURCES:
        return _source(kind, block.get("source"), f"{where}.source")
    if kind == "tool_result" and isinstance(block.get("content"), list):
        for k, inner in enumerate(block["content"]):
            inner_kind = inner.get("type") if isinstance(inner, Mapping) else None
            if inner_kind not in _RESULT_BLOCKS:
                return f"{where}.content.{k}.type: Input tag '{inner_kind}' is not permitted"
            problem = _block(inner, f"{where}.content.{k}")
            if problem is not None:
                return problem
    return None


def _source(kind: str, source: object, where: str) -> str | None:
    source_type = source.get("type") if isinstance(source, Mapping) else None
    allowed = _SOURCES[kind].get(source_type) if isinstance(source_type, str) else None
    if allowed is None or not isinstance(source, Mapping):
        return f"{where}.type: Input tag '{source_type}' does not match any of the expected tags"
    name = _unknown(allowed, source)
    if name is not None:
        return f"{where}.{name}: Extra inputs are not permitted"
    media_type = source.get("media_type")
    if kind == "image" and source_type == "base64" and media_type not in _IMAGE_TYPES:
        return (
            f"{where}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or "
            "'image/webp'"
        )
    if kind == "document" and source_type == "base64" and media_type != "application/pdf":
        return f"{where}.media_type: Input should be 'application/pdf'"
    if kind == "document" and source_type == "text" and media_type != "text/plain":
        return f"{where}.media_type: Input should be 'text/plain'"
    return None
