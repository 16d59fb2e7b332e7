"""LlamaIndex content blocks and reliable-llm content parts, both ways.

=====================  =========================================================================
LlamaIndex block       reliable-llm part
=====================  =========================================================================
``TextBlock``          `TextPart`
``ImageBlock``         `ImagePart` (bytes or a local ``path`` as base64 with ``image_mimetype``;
                       ``url`` as given; ``detail``); a PDF in an ``ImageBlock`` (its mimetype
                       ``application/pdf``) is a `FilePart`, as LlamaIndex's Anthropic LLM reads it
``AudioBlock``         `AudioPart` (bytes or ``path``, base64, with its ``format``)
``DocumentBlock``      `FilePart` (bytes or ``path`` as base64 with ``document_mimetype``, or
                       ``url``; ``title``)
``ThinkingBlock``      `ReasoningPart` (``content``; ``additional_information`` keys ``signature``
                       as LlamaIndex's Anthropic LLM writes it, ``redacted_data``, ``provider``)
``CachePoint``         `CacheControl` on the part before it (LlamaIndex's Anthropic convention);
                       ``additional_kwargs["cache_control"]`` on a message marks its last part
=====================  =========================================================================

URLs are passed on, never fetched here: the route gives each model the form it takes.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence
from io import IOBase
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.base.llms.types import CacheControl as LICacheControl
from llama_index.core.utils import resolve_binary

from reliable_llm import (
    AudioPart,
    CacheControl,
    ConfigurationError,
    FilePart,
    ImagePart,
    Part,
    ReasoningPart,
    TextPart,
)

__all__ = ["message_content", "part_blocks"]

_DETAILS = frozenset(("auto", "low", "high", "original"))
_PDF = "application/pdf"
# DocumentBlock's validator names every untitled document so.
_DEFAULT_TITLE = "input_document"


def _payload(raw: bytes | IOBase | None, path: object) -> str | None:
    """Base64 text of a block's bytes (raw or already base64, as LlamaIndex stores them), of
    a readable buffer, or of a local file; None when the block has neither."""
    if isinstance(raw, IOBase):
        raw.seek(0)
        return base64.b64encode(raw.read()).decode("ascii")
    if isinstance(raw, bytes) and raw:
        # LlamaIndex's blocks store their bytes base64-encoded when built; the core checks
        # the base64 strictly, so it is not decoded and re-encoded here (one pass saved per
        # payload). Bytes that are not even ASCII are raw, and are encoded.
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if path is not None:
        return resolve_binary(path=str(path), as_base64=True).read().decode("ascii")
    return None


def _cache_control(value: object) -> CacheControl:
    kind: object
    ttl: Any
    if isinstance(value, LICacheControl):
        kind, ttl = value.type, value.ttl
    elif isinstance(value, Mapping):
        kind, ttl = value.get("type", "ephemeral"), value.get("ttl")
    else:
        raise ConfigurationError(
            f"cache_control must be a LlamaIndex CacheControl or {{'type': 'ephemeral'}}, "
            f"got {value!r}"
        )
    if kind != "ephemeral":
        raise ConfigurationError(f"cache_control type must be 'ephemeral', got {kind!r}")
    return CacheControl(ttl=ttl)


def _image(block: ImageBlock) -> Part:
    mimetype = block.image_mimetype
    detail: Any = block.detail if block.detail in _DETAILS else None
    data = _payload(block.image, block.path)
    if data is None:
        if block.url is None:
            raise ConfigurationError("an ImageBlock needs image bytes, a path or a url")
        url = str(block.url)
        return FilePart(url=url) if mimetype == _PDF else ImagePart(url=url, detail=detail)
    if mimetype == _PDF:
        return FilePart(data=data, media_type=_PDF)
    if not mimetype:
        raise ConfigurationError(
            "an ImageBlock's image type is unknown; set image_mimetype (e.g. 'image/png')"
        )
    return ImagePart(data=data, media_type=mimetype, detail=detail)


def _audio(block: AudioBlock) -> AudioPart:
    data = _payload(block.audio, block.path)
    if data is None:
        raise ConfigurationError(
            "an AudioBlock needs audio bytes or a local path: no provider's chat API takes "
            "audio by URL, and ReliableLLM does not download it"
        )
    if not block.format:
        raise ConfigurationError("an AudioBlock's format is unknown; set format (e.g. 'wav')")
    return AudioPart(data, block.format)


def _document(block: DocumentBlock) -> FilePart:
    title = block.title if block.title != _DEFAULT_TITLE else None
    filename = Path(str(block.path)).name if block.path is not None else title
    data = _payload(block.data, block.path)
    if data is not None:
        media_type = block.document_mimetype
        if not media_type:
            raise ConfigurationError(
                "a DocumentBlock's type is unknown; set document_mimetype (e.g. 'application/pdf')"
            )
        return FilePart(data=data, media_type=media_type, filename=filename, title=title)
    if block.url is None:
        raise ConfigurationError("a DocumentBlock needs data, a path or a url")
    return FilePart(url=str(block.url), filename=filename, title=title)


def _reasoning(block: ThinkingBlock) -> ReasoningPart | None:
    info = block.additional_information
    redacted = info.get("redacted_data")
    if not block.content and redacted is None:
        return None  # nothing to send: no text and no redacted reasoning
    return ReasoningPart(
        block.content or "",
        signature=info.get("signature"),
        redacted_data=redacted,
        provider=info.get("provider"),
    )


def _with_cache(parts: list[Part], control: CacheControl, where: str) -> None:
    """Mark the last part as the end of a cacheable prefix."""
    if not parts:
        raise ConfigurationError(f"{where}: a CachePoint must follow the block it marks")
    last = parts[-1]
    if isinstance(last, ReasoningPart):
        raise ConfigurationError(f"{where}: a CachePoint cannot mark a ThinkingBlock")
    parts[-1] = dataclasses.replace(last, cache_control=control)


def message_content(message: ChatMessage) -> str | tuple[Part, ...]:
    """The content of ``message``: its text when it holds only text, else its parts in order
    (tool-call blocks are left to the caller).

    Raises:
        ConfigurationError: A block no provider takes (video, citations), media whose type
            is unknown, audio by URL, or a `CachePoint` with nothing before it.
    """
    blocks = message.blocks
    control = message.additional_kwargs.get("cache_control")
    if control is None:  # the common case first: text blocks only (and tool calls)
        texts = []
        for block in blocks:
            kind = type(block)
            if kind is TextBlock:
                texts.append(block.text)  # type: ignore[union-attr]
            elif kind is not ToolCallBlock:
                break
        else:
            return "\n".join(texts)
    where = f"a {message.role.value} message"
    parts: list[Part] = []
    for block in blocks:
        if isinstance(block, TextBlock):
            parts.append(TextPart(block.text))
        elif isinstance(block, ImageBlock):
            parts.append(_image(block))
        elif isinstance(block, AudioBlock):
            parts.append(_audio(block))
        elif isinstance(block, DocumentBlock):
            parts.append(_document(block))
        elif isinstance(block, ThinkingBlock):
            reasoning = _reasoning(block)
            if reasoning is not None:
                parts.append(reasoning)
        elif isinstance(block, CachePoint):
            _with_cache(parts, _cache_control(block.cache_control), where)
        elif not isinstance(block, ToolCallBlock):
            raise ConfigurationError(
                f"ReliableLLM cannot send the {type(block).__name__} in {where}; it sends "
                "text, images, audio, documents and thinking blocks"
            )
    if control is not None:
        _with_cache(parts, _cache_control(control), where)
    return tuple(parts)


def _cache_point(control: CacheControl | None) -> list[Any]:
    if control is None:
        return []
    return [CachePoint(cache_control=LICacheControl(type="ephemeral", ttl=control.ttl or "5m"))]


def part_blocks(parts: Sequence[Part]) -> list[Any]:
    """Parts as LlamaIndex blocks (the inverse of `message_content`).

    Raises:
        ConfigurationError: A part given by a provider file id, which LlamaIndex blocks
            cannot carry.
    """
    blocks: list[Any] = []
    for part in parts:
        if isinstance(part, TextPart):
            blocks.append(TextBlock(text=part.text))
        elif isinstance(part, ReasoningPart):
            info = {
                name: value
                for name, value in (
                    ("signature", part.signature),
                    ("redacted_data", part.redacted_data),
                    ("provider", part.provider),
                )
                if value is not None
            }
            blocks.append(ThinkingBlock(content=part.text or None, additional_information=info))
            continue
        elif isinstance(part, ImagePart):
            if part.file_id is not None:
                raise ConfigurationError("a LlamaIndex ImageBlock cannot carry a provider file id")
            if part.data is not None:
                blocks.append(
                    ImageBlock(
                        image=part.data.encode("ascii"),
                        image_mimetype=part.media_type,
                        detail=part.detail,
                    )
                )
            else:
                blocks.append(ImageBlock(url=part.url, detail=part.detail))
        elif isinstance(part, AudioPart):
            blocks.append(AudioBlock(audio=part.data.encode("ascii"), format=part.format))
        else:
            blocks.append(_document_block(part))
        blocks.extend(_cache_point(part.cache_control))
    return blocks


def _document_block(part: FilePart) -> DocumentBlock:
    title = part.title or part.filename
    if part.file_id is not None:
        raise ConfigurationError("a LlamaIndex DocumentBlock cannot carry a provider file id")
    if part.text is not None:
        data = base64.b64encode(part.text.encode("utf-8"))
        return DocumentBlock(data=data, document_mimetype=part.media_type, title=title)
    if part.data is not None:
        return DocumentBlock(
            data=part.data.encode("ascii"), document_mimetype=part.media_type, title=title
        )
    return DocumentBlock(url=part.url, document_mimetype=part.media_type, title=title)
