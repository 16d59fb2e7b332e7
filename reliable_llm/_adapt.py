"""Fitting a request's content parts to one model, before that model's attempt.

For each model of the route, `adapt` returns the request as that model can take it, with
the changes made, or says why the model cannot take it at all:

- strip what is only an optimisation or only valid for its issuer: `CacheControl` markers
  for a model without prompt caching; reasoning for a model that does not replay it, or that
  another provider issued (signatures are only valid for their issuer), or that is unsigned;
- convert what has another form the model takes: a plain-text `FilePart` as text; images
  and files in tool results moved into a user turn right after the tool results, for wires
  whose tool results carry text only (OpenAI Chat Completions);
- otherwise skip the model (``unsupported_input``): an image for a model without vision, an
  image URL for a model that takes only base64 (we never fetch a URL), audio or a PDF it
  cannot read. The skip is no failure of the model: its breaker is not touched.

A text-only request never comes here (`Plan.has_parts` is False).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from reliable_llm._capabilities import ModelCapabilities
from reliable_llm._content import (
    AudioPart,
    ContentChange,
    FilePart,
    ImagePart,
    Part,
    ReasoningPart,
    TextPart,
)
from reliable_llm._types import ChatRequest, Message

__all__ = ["Unsupported", "adapt"]

_HOW = (
    "; if it does, declare it with register_model(..., metadata={'capabilities': {...}}) "
    "(see ModelCapabilities)"
)


class Unsupported(Exception):
    """The model cannot take a part of the request; the message says which and why."""


def _unsupported(part: Part, caps: ModelCapabilities, issuer: str) -> str | None:
    """Why the model cannot take ``part`` as given, or None when it can."""
    if (
        isinstance(part, ImagePart | FilePart)
        and part.file_id is not None
        and part.provider is not None
        and part.provider != issuer
    ):
        return (
            f"a file id issued by {part.provider}, which only {part.provider} can read "
            "(reliable-llm never downloads a file); pass the file's bytes as data= for a route "
            "across providers"
        )
    if type(part) is ImagePart:
        if not caps.image:
            return "an image, and the model takes no images" + _HOW
        if part.source not in caps.image:
            accepted = " or ".join(sorted(caps.image))
            return (
                f"an image by {part.source}, and the model takes images only by {accepted} "
                "(reliable-llm never fetches a URL itself)" + _HOW
            )
        types = caps.image_media_types
        if types and part.data is not None and part.media_type not in types:
            return f"a {part.media_type} image, and the model takes only {sorted(types)}" + _HOW
    elif type(part) is AudioPart:
        if not caps.audio:
            return "audio, and the model takes no audio" + _HOW
        formats = caps.audio_formats
        if formats and part.format not in formats:
            return f"{part.format} audio, and the model takes only {sorted(formats)}" + _HOW
    elif type(part) is FilePart and part.source != "text":
        if not caps.file:
            return f"a {part.media_type or 'file'} document, and the model takes none" + _HOW
        if part.source not in caps.file:
            accepted = " or ".join(sorted(caps.file))
            return (
                f"a document by {part.source}, and the model takes documents only by "
                f"{accepted} (reliable-llm never fetches a URL itself)" + _HOW
            )
        types = caps.file_media_types
        if types and part.media_type is not None and part.media_type not in types:
            return f"a {part.media_type} document, and the model takes only {sorted(types)}" + _HOW
    return None


class _Fitter:
    """One model's pass over one request's parts; counts what it changed."""

    __slots__ = ("caps", "changes", "issuer")

    def __init__(self, caps: ModelCapabilities, issuer: str) -> None:
        self.caps = caps
        self.issuer = issuer
        self.changes: Counter[tuple[str, str, str]] = Counter()

    def part(self, part: Part) -> Part | None:
        """The part as the model takes it, or None when stripped.

        Raises:
            Unsupported: The model cannot take it.
        """
        if isinstance(part, ReasoningPart):
            return self._reasoning(part)
        if isinstance(part, FilePart) and _textual(part) and not self._takes_document(part):
            self.changes["converted", "file", "a plain-text document sent as text"] += 1
            text = part.text if part.text is not None else (part.raw or b"").decode("utf-8")
            part = TextPart(text, part.cache_control)
        reason = _unsupported(part, self.caps, self.issuer)
        if reason is not None:
            raise Unsupported(reason)
        if part.cache_control is not None and not self.caps.prompt_caching:
            self.changes["stripped", "cache_control", "the model has no prompt caching"] += 1
            part = _without_cache_control(part)
        return part

    def _takes_document(self, part: FilePart) -> bool:
        caps = self.caps
        types = caps.file_media_types
        source = "data" if part.source == "text" else part.source
        return source in caps.file and not (types and part.media_type not in types)

    def _reasoning(self, part: ReasoningPart) -> ReasoningPart | None:
        if not self.caps.reasoning_replay:
            why = "the model takes no reasoning back"
        elif part.provider != self.issuer:
            why = f"issued by {part.provider or 'an unknown provider'}, not {self.issuer}"
        elif part.signature is None and part.redacted_data is None:
            why = "unsigned reasoning cannot be sent back"
        else:
            return part
        self.changes["stripped", "reasoning", why] += 1
        return None

    def message(self, message: Message) -> tuple[Message, tuple[Part, ...]]:
        """The message as the model takes it, and the tool-result media to move out."""
        content = message.content
        if isinstance(content, str):
            return message, ()
        parts: list[Part] = []
        moved: list[Part] = []
        move = message.role == "tool" and not self.caps.tool_result_media
        for original in content:
            part = self.part(original)
            if part is None:
                continue
            if move and type(part) is not TextPart:
                moved.append(part)
                continue
            parts.append(part)
        if moved:
            self.changes["converted", "tool_result", "images and files moved into a user turn"] += (
                len(moved)
            )
            if not parts:
                parts.append(TextPart(f"[{len(moved)} attachment(s) follow in the next turn]"))
        if tuple(parts) == content:
            return message, ()
        return _with_content(message, tuple(parts)), tuple(moved)


def _textual(part: FilePart) -> bool:
    """Whether the document is text we hold (plain ``text``, or base64 UTF-8 ``text/*`` data)."""
    if part.text is not None:
        return True
    if part.data is None or not (part.media_type or "").startswith("text/"):
        return False
    try:
        (part.raw or b"").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _without_cache_control(part: Part) -> Part:
    """A copy of ``part`` without its marker: not rebuilt (the part was checked when built,
    and a 1 MB payload need not be validated again), its payload digest kept."""
    clone = object.__new__(type(part))
    for field in dataclasses.fields(part):
        name = field.name
        object.__setattr__(clone, name, None if name == "cache_control" else getattr(part, name))
    return clone


def _with_content(message: Message, parts: tuple[Part, ...]) -> Message:
    return Message(message.role, parts, message.tool_calls, message.tool_call_id, message.name)


def adapt(
    request: ChatRequest, model: str, caps: ModelCapabilities, issuer: str
) -> tuple[ChatRequest, tuple[ContentChange, ...]]:
    """``request`` as ``model`` (served by provider ``issuer``) can take it, and what changed.

    Raises:
        Unsupported: The model cannot take a part in any form.
    """
    fitter = _Fitter(caps, issuer)
    messages: list[Message] = []
    pending: list[Part] = []  # tool-result media, sent after the run of tool messages
    for message in request.messages:
        if pending and message.role != "tool":
            messages.append(Message("user", tuple(pending)))
            pending = []
        fitted, moved = fitter.message(message)
        messages.append(fitted)
        pending.extend(moved)
    if pending:
        messages.append(Message("user", tuple(pending)))
    if not fitter.changes:
        return request, ()
    changes = tuple(
        ContentChange(model, action, part, detail, times)  # type: ignore[arg-type]
        for (action, part, detail), times in fitter.changes.items()
    )
    return request._replace(messages=tuple(messages)), changes
