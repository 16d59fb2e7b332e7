"""LangChain content blocks and reliable-llm content parts, both ways.

Inputs arrive in every format LangChain users send: LangChain's standard (v1) blocks
(``image``, ``audio``, ``file``, ``text-plain``, ``reasoning``; by ``url``, ``base64`` or
``file_id``), its older v0 blocks (``source_type``), OpenAI chat-completions parts
(``image_url``, ``input_audio``, ``file``) and Anthropic blocks (``image`` / ``document``
with a ``source``, ``thinking``, ``redacted_thinking``, ``tool_result``, ``cache_control``).
LangChain's own parser (``BaseMessage.content_blocks``, langchain-core >= 1.0) turns the
provider formats into standard blocks; this module maps standard blocks onto parts and
handles what that parser leaves provider-specific (thinking blocks, tool results).

Outputs are standard blocks: reasoning as ``{"type": "reasoning", "reasoning": ...,
"extras": {"signature": ..., "provider": ...}}`` (the ``extras`` LangChain's Anthropic
integration reads a signature from), media as ``image`` / ``audio`` / ``file`` blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from reliable_llm import (
    AudioPart,
    CacheControl,
    ConfigurationError,
    FilePart,
    ImagePart,
    Part,
    ReasoningPart,
    StreamChunk,
    TextPart,
)

__all__ = [
    "ReasoningStream",
    "ToolResult",
    "answer_reasoning",
    "message_parts",
    "part_blocks",
    "reasoning_blocks",
]

# Blocks the tool-call fields of an AIMessage already carry.
_TOOL_CALL_BLOCKS = frozenset(("tool_call", "tool_use", "invalid_tool_call", "tool_call_chunk"))
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "ogg",
    "audio/webm": "webm",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
    "audio/pcm": "pcm16",
}
# Anthropic's thinking blocks name their issuer by their format.
_ANTHROPIC = "anthropic"


class ToolResult:
    """An Anthropic ``tool_result`` block found in a human message: its id and parts."""

    __slots__ = ("content", "tool_call_id")

    def __init__(self, tool_call_id: str, content: str | tuple[Part, ...]) -> None:
        self.tool_call_id = tool_call_id
        self.content = content


def _cache_control(block: Mapping[str, Any]) -> CacheControl | None:
    value = block.get("cache_control")
    if value is None:
        extras = block.get("extras")
        value = extras.get("cache_control") if isinstance(extras, Mapping) else None
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("type") != "ephemeral":
        raise ConfigurationError(
            f"cache_control must be Anthropic's {{'type': 'ephemeral'}} (optionally with "
            f"'ttl': '5m' or '1h'), got {value!r}"
        )
    return CacheControl(ttl=value.get("ttl"))


def _extra(block: Mapping[str, Any], name: str) -> Any:
    value = block.get(name)
    if value is None:
        extras = block.get("extras")
        if isinstance(extras, Mapping):
            value = extras.get(name)
    return value


def _file_id(block: Mapping[str, Any], raw: object) -> str | None:
    """A provider file id: ``file_id`` in standard blocks; LangChain's Anthropic parser puts an
    Anthropic ``{"source": {"type": "file", "file_id": ...}}`` under ``id`` instead."""
    file_id = block.get("file_id")
    if file_id is None and isinstance(raw, Mapping):
        source = raw.get("source")
        if isinstance(source, Mapping) and source.get("type") == "file":
            file_id = source.get("file_id")
    if file_id is None and block.get("source_type") == "id":
        file_id = block.get("id")
    return file_id if isinstance(file_id, str) else None


def _base64(block: Mapping[str, Any]) -> Any:
    return block["data"] if block.get("source_type") == "base64" else block.get("base64")


def _url(block: Mapping[str, Any]) -> Any:
    return block.get("url")


def _image(block: Mapping[str, Any], raw: object) -> ImagePart:
    detail = _extra(block, "detail")
    control = _cache_control(block)
    file_id = _file_id(block, raw)
    if file_id is not None:
        return ImagePart(file_id=file_id, detail=detail, cache_control=control)
    data = _base64(block)
    if data is not None:
        return ImagePart(
            data=data, media_type=block.get("mime_type"), detail=detail, cache_control=control
        )
    url = _url(block)
    if url is None:
        raise ConfigurationError(
            "an image content block needs 'url', 'base64' (with 'mime_type') or 'file_id'"
        )
    return ImagePart(url=url, detail=detail, cache_control=control)


def _audio(block: Mapping[str, Any]) -> AudioPart:
    data = _base64(block)
    mime_type = block.get("mime_type")
    audio_format = _AUDIO_FORMATS.get(str(mime_type).lower())
    if data is None or audio_format is None:
        raise ConfigurationError(
            "an audio content block needs 'base64' data and a 'mime_type' such as 'audio/wav' "
            f"or 'audio/mpeg' (got mime_type {mime_type!r}); audio by URL or file id is not "
            "accepted by any provider's chat API"
        )
    return AudioPart(data, audio_format, cache_control=_cache_control(block))


def _file(block: Mapping[str, Any], raw: object) -> FilePart:
    control = _cache_control(block)
    filename = _extra(block, "filename")
    title = _extra(block, "title")
    file_id = _file_id(block, raw)
    if file_id is not None:
        return FilePart(file_id=file_id, filename=filename, title=title, cache_control=control)
    data = _base64(block)
    if data is not None:
        return FilePart(
            data=data,
            media_type=block.get("mime_type"),
            filename=filename,
            title=title,
            cache_control=control,
        )
    url = _url(block)
    if url is None:
        raise ConfigurationError(
            "a file content block needs 'base64' (with 'mime_type'), 'url' or 'file_id'"
        )
    return FilePart(url=url, filename=filename, title=title, cache_control=control)


def _plain_text(block: Mapping[str, Any]) -> FilePart:
    control = _cache_control(block)
    title = block.get("title")
    text = block.get("text")
    if text is not None:
        return FilePart(text=text, title=title, cache_control=control)
    data = _base64(block)
    if data is not None:
        return FilePart(data=data, media_type="text/plain", title=title, cache_control=control)
    return FilePart(url=_url(block), title=title, cache_control=control)


def _reasoning(block: Mapping[str, Any], provider: str | None) -> ReasoningPart:
    extras = block.get("extras")
    extras = extras if isinstance(extras, Mapping) else {}
    return ReasoningPart(
        block.get("reasoning") or "",
        signature=extras.get("signature"),
        redacted_data=extras.get("redacted_data"),
        provider=extras.get("provider") or provider,
    )


def _native(value: Mapping[str, Any], where: str) -> Part | ToolResult | None:
    """A block LangChain's parser left provider-specific: Anthropic's thinking and tool
    results; tool-call blocks are skipped (the message's ``tool_calls`` carry them)."""
    kind = value.get("type")
    if kind == "thinking":
        return ReasoningPart(
            value.get("thinking") or "", signature=value.get("signature"), provider=_ANTHROPIC
        )
    if kind == "redacted_thinking":
        return ReasoningPart(redacted_data=value.get("data"), provider=_ANTHROPIC)
    if kind == "tool_result":
        content = value.get("content")
        if isinstance(content, list):
            result, nested = message_parts(HumanMessage(content), f"{where} (a tool_result)")
            if nested:
                raise ConfigurationError(f"{where} nests a tool_result inside a tool_result")
        else:
            result = "" if content is None else str(content)
        return ToolResult(str(value.get("tool_use_id") or ""), result)
    if kind == "image_url" and isinstance(value.get("image_url"), str):
        # LangChain's older shorthand, ``"image_url": "<url or data URL>"``.
        return ImagePart(url=value["image_url"], cache_control=_cache_control(value))
    if kind in _TOOL_CALL_BLOCKS:
        return None
    raise ConfigurationError(
        f"{where} holds a content block of type {kind!r} that reliable-llm cannot send; "
        "use text, image, audio, file, text-plain or reasoning blocks (LangChain's standard "
        "content blocks) or their OpenAI / Anthropic forms"
    )


def _part(
    block: Mapping[str, Any], raw: object, where: str, provider: str | None
) -> Part | ToolResult | None:
    kind = block.get("type")
    if kind == "text":
        return TextPart(block.get("text") or "", cache_control=_cache_control(block))
    if kind == "image":
        return _image(block, raw)
    if kind == "file":
        return _file(block, raw)
    if kind == "audio":
        return _audio(block)
    if kind == "text-plain":
        return _plain_text(block)
    if kind == "reasoning":
        return _reasoning(block, provider)
    if kind == "refusal":  # an earlier answer that declined: its words stay in the history
        return TextPart(block.get("refusal") or "")
    if kind in _TOOL_CALL_BLOCKS:
        return None
    if kind == "non_standard":
        value = block.get("value")
        return _native(value if isinstance(value, Mapping) else {}, where)
    raise ConfigurationError(
        f"{where} holds a {kind!r} content block, which reliable-llm cannot send; use text, "
        "image, audio, file, text-plain or reasoning blocks"
    )


def _parts(
    content: list[Any], blocks: list[Any], where: str, provider: str | None
) -> list[Part | ToolResult]:
    if len(blocks) != len(content):  # pragma: no cover - the parser maps blocks one to one
        raise ConfigurationError(f"{where}: LangChain could not parse its content blocks")
    parts: list[Part | ToolResult] = []
    for block, raw in zip(blocks, content, strict=True):
        part = _part(block, raw, where, provider)
        if part is not None:
            parts.append(part)
    return parts


def _standard_blocks(message: BaseMessage) -> list[Any]:
    # LangChain's parser of every known input format, as BaseMessage defines it: one standard
    # block per content item. (AIMessage overrides the property to read a provider's output
    # format and to add blocks from other fields; the content here is what the caller wrote.)
    return BaseMessage.content_blocks.fget(message)  # type: ignore[attr-defined,no-any-return]


def _text_only(content: list[Any]) -> bool:
    for block in content:
        if isinstance(block, str):
            continue
        if not isinstance(block, Mapping) or block.get("type") not in ("text", *_TOOL_CALL_BLOCKS):
            return False
        if "cache_control" in block or "extras" in block:
            return False
    return True


def message_parts(
    message: BaseMessage, where: str, *, provider: str | None = None
) -> tuple[str | tuple[Part, ...], list[ToolResult]]:
    """The content of ``message`` as text (when it is only text) or parts, and any
    Anthropic ``tool_result`` blocks it holds (a human message may carry them).

    ``provider`` is the issuer assumed for standard reasoning blocks that do not name one.

    Raises:
        ConfigurationError: A block that no provider takes, or a malformed one (an image
            without a source, a malformed data URL, audio without a known media type...).
    """
    content = message.content
    if isinstance(content, str):
        return content, []
    if _text_only(content):
        # LangChain's ``.text`` is a str subclass (TextAccessor); the core wants a plain str.
        return str(message.text), []
    parts: list[Part] = []
    results: list[ToolResult] = []
    for item in _parts(content, _standard_blocks(message), where, provider):
        if isinstance(item, ToolResult):
            results.append(item)
        else:
            parts.append(item)
    return tuple(parts), results


def answer_reasoning(message: AIMessage, issuer: str) -> tuple[ReasoningPart, ...]:
    """The reasoning of a wrapped LangChain model's answer, as parts issued by ``issuer``
    (the provider that serves the model: only it may get signed reasoning back).

    Read with LangChain's own parser of the model's output (``AIMessage.content_blocks``,
    which knows each integration's format); reasoning blocks without text or redacted data
    carry nothing to keep.
    """
    content = message.content
    if isinstance(content, str) and not message.additional_kwargs:
        return ()  # the common case: plain text, no provider reasoning fields
    parts = []
    for standard in message.content_blocks:
        block: Mapping[str, Any] = standard
        value = block.get("value")
        if isinstance(value, Mapping) and value.get("type") == "redacted_thinking":
            # LangChain leaves Anthropic's redacted thinking provider-specific.
            parts.append(ReasoningPart(redacted_data=value.get("data"), provider=issuer))
            continue
        if block.get("type") != "reasoning":
            continue
        extras: Mapping[str, Any] = block.get("extras") or {}
        text = block.get("reasoning") or ""
        redacted = extras.get("redacted_data")
        if text or redacted is not None:
            parts.append(
                ReasoningPart(
                    text, signature=extras.get("signature"), redacted_data=redacted, provider=issuer
                )
            )
    return tuple(parts)


def reasoning_blocks(parts: Sequence[ReasoningPart]) -> list[dict[str, Any]]:
    """Reasoning parts as LangChain's standard ``reasoning`` blocks (signature, redacted
    data and issuer in ``extras``)."""
    blocks: list[dict[str, Any]] = []
    for part in parts:
        block: dict[str, Any] = {"type": "reasoning"}
        if part.text:
            block["reasoning"] = part.text
        extras = {
            name: value
            for name, value in (
                ("signature", part.signature),
                ("redacted_data", part.redacted_data),
                ("provider", part.provider),
            )
            if value is not None
        }
        if extras:
            block["extras"] = extras
        blocks.append(block)
    return blocks


def _with_cache(block: dict[str, Any], control: CacheControl | None) -> dict[str, Any]:
    if control is not None:
        block.setdefault("extras", {})["cache_control"] = control.to_wire()
    return block


def part_blocks(parts: Sequence[Part]) -> list[dict[str, Any]]:
    """Parts as LangChain standard content blocks (what a wrapped LangChain model is sent)."""
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            blocks.append(_with_cache({"type": "text", "text": part.text}, part.cache_control))
        elif isinstance(part, ReasoningPart):
            blocks.extend(reasoning_blocks((part,)))
        elif isinstance(part, ImagePart):
            block: dict[str, Any] = {"type": "image"}
            if part.data is not None:
                block.update(base64=part.data, mime_type=part.media_type)
            elif part.url is not None:
                block["url"] = part.url
            else:
                block["file_id"] = part.file_id
            if part.detail is not None:
                block["extras"] = {"detail": part.detail}
            blocks.append(_with_cache(block, part.cache_control))
        elif isinstance(part, AudioPart):
            block = {"type": "audio", "base64": part.data, "mime_type": part.media_type}
            blocks.append(_with_cache(block, part.cache_control))
        else:
            blocks.append(_with_cache(_file_block(part), part.cache_control))
    return blocks


def _file_block(part: FilePart) -> dict[str, Any]:
    if part.text is not None:
        block: dict[str, Any] = {"type": "text-plain", "text": part.text, "mime_type": "text/plain"}
    elif part.data is not None:
        block = {"type": "file", "base64": part.data, "mime_type": part.media_type}
    elif part.url is not None:
        block = {"type": "file", "url": part.url}
    else:
        block = {"type": "file", "file_id": part.file_id}
    if part.filename is not None:
        block["filename"] = part.filename
    if part.title is not None:
        block["title"] = part.title
    return block


class ReasoningStream:
    """Turns a stream's reasoning into LangChain chunk content that merges into the final
    message's blocks: reasoning text as it streams, then each finished block's signature
    (or a redacted block) at the same ``index``, and text as ``text`` blocks once reasoning
    has appeared (before that, text stays a plain string, as in a stream without reasoning).
    """

    __slots__ = ("_index", "_kind", "_open")

    def __init__(self) -> None:
        self._index = -1
        self._kind = ""  # what the block at _index still takes: "reasoning", "text" or ""
        self._open: list[int] = []  # reasoning blocks streamed whose signature is to come

    def _continue(self, kind: str) -> int:
        """The index of the open block of ``kind``, or of a new one."""
        if self._kind != kind:
            self._index += 1
            self._kind = kind
            if kind == "reasoning":
                self._open.append(self._index)
        return self._index

    def content(self, chunk: StreamChunk) -> str | list[str | dict[str, Any]]:
        """The LangChain content of ``chunk``: its text, as a string or as blocks."""
        if not chunk.reasoning and not chunk.reasoning_parts and self._index < 0:
            return chunk.text
        blocks: list[str | dict[str, Any]] = []
        if chunk.reasoning:
            index = self._continue("reasoning")
            blocks.append({"type": "reasoning", "reasoning": chunk.reasoning, "index": index})
        for part in chunk.reasoning_parts:
            (block,) = reasoning_blocks((part,))
            if self._open and not part.redacted:
                # Its text streamed already: the finished block adds the signature.
                block.pop("reasoning", None)
                block["index"] = index = self._open.pop(0)
            else:
                self._index += 1
                block["index"] = index = self._index
            if index == self._index:
                self._kind = ""  # a finished block takes no more text
            blocks.append(block)
        if chunk.text:
            blocks.append({"type": "text", "text": chunk.text, "index": self._continue("text")})
        return blocks
