"""Content parts: what a message holds besides plain text.

A `Message`'s ``content`` is either a ``str`` (plain text, the common case, unchanged) or a
tuple of parts, in order::

    TextPart(text, cache_control=None)
    ImagePart(url=... | data=<base64> + media_type | file_id=..., detail=None, cache_control=None,
              provider=None)
    AudioPart(data=<base64>, format="wav" | "mp3" | ..., cache_control=None)
    FilePart(data=<base64> + media_type | url=... | file_id=... | text=..., filename=None,
             title=None, cache_control=None, provider=None)
    ReasoningPart(text="", signature=None, redacted_data=None, provider=None)

Names follow the field: ``media_type`` and ``cache_control`` as in Anthropic's Messages API
(and pydantic-ai), ``detail`` and ``format`` as in OpenAI's ``image_url`` and ``input_audio``
parts, ``file_id`` and ``filename`` as in OpenAI's ``file`` part; the kinds match LangChain's
standard content blocks (``text``, ``image``, ``audio``, ``file``, ``reasoning``).

Where each part may appear: system messages hold `TextPart`; user messages hold text, image,
audio and file parts; assistant messages hold text and reasoning parts; tool results hold
text, image and file parts.

Parts are frozen, slotted and checked when built: a bad part raises `ConfigurationError`
naming the field and the fix. Binary payloads are base64 text (``data``), as both wires carry
them; build one from raw bytes with ``ImagePart.from_bytes(...)`` (and the same on
`AudioPart` and `FilePart`). A ``data:`` URL given as ``url`` is split into ``data`` and
``media_type``, so each payload has one form. A part's ``repr`` shows the size and SHA-256
of its payload, never the payload. ``provider`` on an image or file names the provider that
issued its ``file_id`` (a file id is only valid there).

`CacheControl` marks the end of a prompt prefix the provider should cache (Anthropic's
``{"type": "ephemeral", "ttl": ...}``): an optimisation, dropped for models without prompt
caching. A `ReasoningPart` is the model's reasoning as its ``provider`` issued it (Anthropic's
``thinking`` with its ``signature``, or ``redacted_thinking``'s ``data``): sent back only to
a model of that provider that replays reasoning, dropped for every other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

from reliable_llm._errors import ConfigurationError

__all__ = [
    "AudioPart",
    "CacheControl",
    "ContentChange",
    "FilePart",
    "ImagePart",
    "Part",
    "ReasoningPart",
    "TextPart",
    "check_content",
    "content_text",
]

_IMAGE_DETAILS = frozenset(("auto", "low", "high", "original"))
_CACHE_TTLS = frozenset(("5m", "1h"))
# OpenAI's input_audio formats and their media types (RFC 3003 for mp3, RFC 2361 for wav).
AUDIO_MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "webm": "audio/webm",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "pcm16": "audio/pcm",
}


def _text(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(f"{owner}.{name} must be a str, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigurationError(
                f"{owner}.{name} contains an unpaired surrogate at index {exc.start}, which "
                "cannot be sent as UTF-8; decode your input with errors='replace'"
            ) from None


def _optional_text(owner: str, name: str, value: object) -> None:
    if value is not None:
        _text(owner, name, value)


def _base64(owner: str, data: object) -> None:
    if isinstance(data, bytes | bytearray | memoryview):
        raise ConfigurationError(
            f"{owner}.data must be base64 text, got {type(data).__name__}; build the part from "
            f"raw bytes with {owner}.from_bytes(...)"
        )
    if not isinstance(data, str):
        raise ConfigurationError(f"{owner}.data must be base64 text, got {type(data).__name__}")
    if not data:
        raise ConfigurationError(f"{owner}.data must not be empty")
    try:
        # One C pass; strict mode rejects whitespace, bad padding and non-alphabet characters.
        binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"{owner}.data is not valid base64 (standard alphabet, padded, no whitespace or "
            f"data: prefix); encode raw bytes with {owner}.from_bytes(...) or pass a data URL "
            "as url="
        ) from None


def parse_data_url(owner: str, url: str) -> tuple[str, str]:
    """``(media_type, base64 data)`` of a ``data:<media type>;base64,<data>`` URL (RFC 2397).

    Raises:
        ConfigurationError: The URL is not a base64 data URL with a media type.
    """
    header, comma, data = url.partition(",")
    params = header[5:].split(";")
    media_type = params[0].strip().lower()
    if not comma or "base64" not in params[1:] or "/" not in media_type:
        raise ConfigurationError(
            f"{owner}.url is a malformed data URL ({url[:40]!r}...); it must read "
            "'data:<media type>;base64,<base64 data>', e.g. 'data:image/png;base64,iVBORw0...'"
        )
    return media_type, data


def _media_type(owner: str, value: object, prefix: str | None) -> None:
    if not isinstance(value, str) or "/" not in value:
        raise ConfigurationError(
            f"{owner}.media_type must be a MIME type such as "
            f"{'image/png' if prefix == 'image/' else 'application/pdf'!r}, got {value!r}"
        )
    if prefix is not None and not value.startswith(prefix):
        raise ConfigurationError(f"{owner}.media_type must start with {prefix!r}, got {value!r}")


def _cache_control(owner: str, value: object) -> None:
    if value is not None and not isinstance(value, CacheControl):
        raise ConfigurationError(
            f"{owner}.cache_control must be a CacheControl() or None, got {value!r}"
        )


def _describe(part: _Binary, data: str) -> str:
    return f"<{len(data)} base64 chars, sha256 {part.digest()[:12]}>"  # type: ignore[index]


def _sha256(data: str) -> str:
    return hashlib.sha256(data.encode("ascii")).hexdigest()


def _one_source(owner: str, sources: Mapping[str, object]) -> str:
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        names = " | ".join(f"{n}=" for n in sources)
        raise ConfigurationError(
            f"{owner} needs exactly one of {names}; got {', '.join(given) or 'none'}"
        )
    return given[0]


def _set(part: object, name: str, value: object) -> None:
    object.__setattr__(part, name, value)


@dataclass(frozen=True, slots=True)
class CacheControl:
    """A prompt-cache breakpoint: the prompt up to and including this part may be cached.

    Anthropic's ``cache_control`` (``{"type": "ephemeral"}``, optionally with ``ttl`` ``"5m"``
    or ``"1h"``). Only an optimisation: models without prompt caching get the part without it.
    """

    ttl: Literal["5m", "1h"] | None = None

    def __post_init__(self) -> None:
        if self.ttl is not None and self.ttl not in _CACHE_TTLS:
            raise ConfigurationError(
                f"CacheControl.ttl must be '5m', '1h' or None, got {self.ttl!r}"
            )

    def to_wire(self) -> dict[str, str]:
        """Anthropic's ``cache_control`` object."""
        if self.ttl is None:
            return {"type": "ephemeral"}
        return {"type": "ephemeral", "ttl": self.ttl}


@dataclass(frozen=True, slots=True)
class TextPart:
    """Text. ``cache_control`` marks a prompt-cache breakpoint after it."""

    text: str
    cache_control: CacheControl | None = None

    kind: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        _text("TextPart", "text", self.text)
        _cache_control("TextPart", self.cache_control)

    def key(self) -> list[Any]:
        """The part as a cache-key item (canonical JSON)."""
        control = self.cache_control
        return ["text", self.text, None if control is None else control.ttl or ""]


class _Binary:
    """Shared behaviour of parts with a base64 ``data`` payload."""

    __slots__ = ()

    def digest(self) -> str | None:
        """SHA-256 (hex) of the base64 ``data`` text, computed once per part; None without."""
        data: str | None = self.data  # type: ignore[attr-defined]
        if data is None:
            return None
        known: str | None = self._digest  # type: ignore[attr-defined]
        if known is None:
            known = _sha256(data)
            _set(self, "_digest", known)
        return known

    @property
    def raw(self) -> bytes | None:
        """The payload as raw bytes (decoded from ``data``), or None for a URL or id."""
        data: str | None = self.data  # type: ignore[attr-defined]
        return None if data is None else base64.b64decode(data)

    @property
    def data_url(self) -> str | None:
        """The payload as a ``data:<media type>;base64,...`` URL, or None without ``data``."""
        data: str | None = self.data  # type: ignore[attr-defined]
        if data is None:
            return None
        return f"data:{self.media_type};base64,{data}"  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True, repr=False)
class ImagePart(_Binary):
    """An image, by ``url``, by base64 ``data`` with its ``media_type``, or by ``file_id``.

    ``provider`` names the provider that issued ``file_id`` (``"openai"``, ``"anthropic"``):
    a file id is only valid there, so other providers' models are skipped for it.
    A ``data:`` URL passed as ``url`` becomes ``data`` and ``media_type``. ``detail`` is
    OpenAI's resolution hint (``"auto"``, ``"low"``, ``"high"``, ``"original"``); other
    wires ignore it.

    Raises:
        ConfigurationError: Not exactly one source, invalid base64, a malformed data URL, or
            a media type that is not ``image/...``.
    """

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high", "original"] | None = None
    cache_control: CacheControl | None = None
    provider: str | None = None
    _digest: str | None = field(default=None, init=False, compare=False, hash=False)

    kind: ClassVar[str] = "image"

    def __post_init__(self) -> None:
        owner = "ImagePart"
        source = _one_source(owner, {"url": self.url, "data": self.data, "file_id": self.file_id})
        if source == "url":
            _text(owner, "url", self.url)
            if self.url.startswith("data:"):  # type: ignore[union-attr]
                media_type, data = parse_data_url(owner, self.url)  # type: ignore[arg-type]
                _set(self, "url", None)
                _set(self, "data", data)
                _set(self, "media_type", media_type)
                source = "data"
        if source == "data":
            _base64(owner, self.data)
            _media_type(owner, self.media_type, "image/")
        elif self.media_type is not None:
            _media_type(owner, self.media_type, "image/")
        if source == "file_id":
            _text(owner, "file_id", self.file_id)
        _optional_text(owner, "provider", self.provider)
        if self.detail is not None and self.detail not in _IMAGE_DETAILS:
            raise ConfigurationError(
                "ImagePart.detail must be 'auto', 'low', 'high', 'original' or None, got "
                f"{self.detail!r}"
            )
        _cache_control(owner, self.cache_control)

    @classmethod
    def from_bytes(
        cls,
        raw: bytes,
        media_type: str,
        *,
        detail: Literal["auto", "low", "high", "original"] | None = None,
    ) -> ImagePart:
        """An image from its raw bytes (``media_type`` such as ``"image/png"``)."""
        return cls(data=base64.b64encode(raw).decode("ascii"), media_type=media_type, detail=detail)

    @property
    def source(self) -> Literal["url", "data", "file_id"]:
        """How the image is given: ``"url"``, ``"data"`` (base64) or ``"file_id"``."""
        return "data" if self.data is not None else "url" if self.url is not None else "file_id"

    def key(self) -> list[Any]:
        """The part as a cache-key item: the payload's SHA-256, never the payload."""
        control = self.cache_control
        return [
            "image",
            self.url,
            self.digest(),
            self.media_type,
            self.file_id,
            self.detail,
            None if control is None else control.ttl or "",
            self.provider,
        ]

    def __repr__(self) -> str:
        return _repr(
            self, ("url", "data", "media_type", "file_id", "detail", "cache_control", "provider")
        )


@dataclass(frozen=True, slots=True, repr=False)
class AudioPart(_Binary):
    """Audio as base64 ``data`` in a ``format`` (``"wav"``, ``"mp3"``, ...; OpenAI's
    ``input_audio`` names).

    Raises:
        ConfigurationError: Invalid base64 or an unknown format.
    """

    data: str
    format: str
    cache_control: CacheControl | None = None
    _digest: str | None = field(default=None, init=False, compare=False, hash=False)

    kind: ClassVar[str] = "audio"

    def __post_init__(self) -> None:
        if self.format not in AUDIO_MEDIA_TYPES:
            raise ConfigurationError(
                f"AudioPart.format must be one of {sorted(AUDIO_MEDIA_TYPES)}, got {self.format!r}"
            )
        _base64("AudioPart", self.data)
        _cache_control("AudioPart", self.cache_control)

    @classmethod
    def from_bytes(cls, raw: bytes, format: str) -> AudioPart:
        """Audio from its raw bytes in ``format`` (``"wav"``, ``"mp3"``, ...)."""
        return cls(base64.b64encode(raw).decode("ascii"), format)

    @property
    def media_type(self) -> str:
        """The MIME type of ``format`` (``"audio/wav"``, ``"audio/mpeg"``, ...)."""
        return AUDIO_MEDIA_TYPES[self.format]

    def key(self) -> list[Any]:
        """The part as a cache-key item: the payload's SHA-256, never the payload."""
        control = self.cache_control
        return ["audio", self.digest(), self.format, None if control is None else control.ttl or ""]

    def __repr__(self) -> str:
        return _repr(self, ("data", "format", "cache_control"))


@dataclass(frozen=True, slots=True, repr=False)
class FilePart(_Binary):
    """A document: base64 ``data`` with its ``media_type`` (a PDF: ``"application/pdf"``), a
    ``url``, a provider's ``file_id``, or plain ``text`` (media type ``"text/plain"``).

    ``filename`` is sent where the wire carries one (OpenAI's ``file``); ``title`` where it
    carries one (Anthropic's ``document``). Models that take no documents get a plain-text
    file as text; other files need a model that takes documents. ``provider`` names the
    provider that issued ``file_id``: a file id is only valid there.

    Raises:
        ConfigurationError: Not exactly one source, invalid base64, a malformed data URL, or
            ``data`` without a media type.
    """

    data: str | None = None
    media_type: str | None = None
    url: str | None = None
    file_id: str | None = None
    text: str | None = None
    filename: str | None = None
    title: str | None = None
    cache_control: CacheControl | None = None
    provider: str | None = None
    _digest: str | None = field(default=None, init=False, compare=False, hash=False)

    kind: ClassVar[str] = "file"

    def __post_init__(self) -> None:
        owner = "FilePart"
        sources = {"data": self.data, "url": self.url, "file_id": self.file_id, "text": self.text}
        source = _one_source(owner, sources)
        if source == "url":
            _text(owner, "url", self.url)
            if self.url.startswith("data:"):  # type: ignore[union-attr]
                media_type, data = parse_data_url(owner, self.url)  # type: ignore[arg-type]
                _set(self, "url", None)
                _set(self, "data", data)
                _set(self, "media_type", media_type)
                source = "data"
        if source == "data":
            _base64(owner, self.data)
            _media_type(owner, self.media_type, None)
        elif source == "text":
            _text(owner, "text", self.text)
            if self.media_type is None:
                _set(self, "media_type", "text/plain")
            _media_type(owner, self.media_type, "text/")
        elif self.media_type is not None:
            _media_type(owner, self.media_type, None)
        if source == "file_id":
            _text(owner, "file_id", self.file_id)
        _optional_text(owner, "filename", self.filename)
        _optional_text(owner, "title", self.title)
        _optional_text(owner, "provider", self.provider)
        _cache_control(owner, self.cache_control)

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str, *, filename: str | None = None) -> FilePart:
        """A document from its raw bytes (``media_type`` such as ``"application/pdf"``)."""
        data = base64.b64encode(raw).decode("ascii")
        return cls(data=data, media_type=media_type, filename=filename)

    @property
    def source(self) -> Literal["data", "url", "file_id", "text"]:
        """How the document is given: ``"data"``, ``"url"``, ``"file_id"`` or ``"text"``."""
        if self.data is not None:
            return "data"
        if self.url is not None:
            return "url"
        return "file_id" if self.file_id is not None else "text"

    def key(self) -> list[Any]:
        """The part as a cache-key item: the payload's SHA-256, never the payload."""
        control = self.cache_control
        return [
            "file",
            self.digest(),
            self.media_type,
            self.url,
            self.file_id,
            self.text,
            self.filename,
            self.title,
            None if control is None else control.ttl or "",
            self.provider,
        ]

    def __repr__(self) -> str:
        return _repr(
            self,
            (
                "data",
                "media_type",
                "url",
                "file_id",
                "text",
                "filename",
                "title",
                "cache_control",
                "provider",
            ),
        )


@dataclass(frozen=True, slots=True, repr=False)
class ReasoningPart:
    """The model's reasoning, as the ``provider`` that issued it returned it.

    ``text`` is the reasoning shown (Anthropic's ``thinking``); ``signature`` is the
    provider's opaque proof that the text is unaltered (Anthropic requires thinking blocks to
    be sent back with it, unchanged, in a tool-use loop); ``redacted_data`` is the encrypted
    reasoning of a ``redacted_thinking`` block (then ``text`` is empty). ``provider`` names
    the issuer (``"anthropic"``, ``"deepseek"``, ...): signed or redacted reasoning is only
    valid for it, and is dropped when the request falls back to another provider.

    Raises:
        ConfigurationError: No text, signature or redacted data, or a non-str field.
    """

    text: str = ""
    signature: str | None = None
    redacted_data: str | None = None
    provider: str | None = None

    kind: ClassVar[str] = "reasoning"

    def __post_init__(self) -> None:
        _text("ReasoningPart", "text", self.text)
        for name in ("signature", "redacted_data", "provider"):
            _optional_text("ReasoningPart", name, getattr(self, name))
        if not self.text and self.signature is None and self.redacted_data is None:
            raise ConfigurationError(
                "ReasoningPart needs text= (and the provider's signature=, if it signed it), "
                "or redacted_data= for redacted reasoning"
            )

    @property
    def redacted(self) -> bool:
        """Whether the reasoning is redacted (encrypted ``redacted_data``, no text)."""
        return self.redacted_data is not None

    def key(self) -> list[Any]:
        """The part as a cache-key item (signature and redacted data hashed)."""
        return [
            "reasoning",
            self.text,
            None if self.signature is None else _sha256_text(self.signature),
            None if self.redacted_data is None else _sha256_text(self.redacted_data),
            self.provider,
        ]

    def __repr__(self) -> str:
        fields = [f"text={self.text!r}"] if self.text else []
        if self.signature is not None:
            fields.append(f"signature=<{len(self.signature)} chars>")
        if self.redacted_data is not None:
            fields.append(f"redacted_data=<{len(self.redacted_data)} chars>")
        if self.provider is not None:
            fields.append(f"provider={self.provider!r}")
        return f"ReasoningPart({', '.join(fields)})"


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _repr(part: _Binary, names: tuple[str, ...]) -> str:
    fields = []
    for name in names:
        value = getattr(part, name)
        if value is None:
            continue
        fields.append(f"{name}={_describe(part, value)}" if name == "data" else f"{name}={value!r}")
    return f"{type(part).__name__}({', '.join(fields)})"


Part = TextPart | ImagePart | AudioPart | FilePart | ReasoningPart
"""One content part of a message."""

_PART_TYPES = (TextPart, ImagePart, AudioPart, FilePart, ReasoningPart)
_ALLOWED: dict[str, tuple[type, ...]] = {
    "system": (TextPart,),
    "user": (TextPart, ImagePart, AudioPart, FilePart),
    "assistant": (TextPart, ReasoningPart),
    "tool": (TextPart, ImagePart, FilePart),
}


def check_content(role: str, content: object) -> tuple[Part, ...]:
    """The parts of a message's non-str ``content``, as a tuple, checked for ``role``.

    Raises:
        ConfigurationError: ``content`` is not a sequence of parts, holds something that is
            not a part (a dict, say), or a part the role cannot carry.
    """
    if isinstance(content, bytes | bytearray) or not isinstance(content, tuple | list):
        raise ConfigurationError(
            "message content must be a str or a list of parts (TextPart, ImagePart, AudioPart, "
            f"FilePart, ReasoningPart), got {type(content).__name__}"
        )
    parts = tuple(content)
    allowed = _ALLOWED.get(role, _PART_TYPES)
    for index, part in enumerate(parts):
        if not isinstance(part, allowed):
            if isinstance(part, _PART_TYPES):
                names = ", ".join(t.__name__ for t in allowed)
                raise ConfigurationError(
                    f"a {role} message cannot carry a {type(part).__name__} (content[{index}]); "
                    f"it may hold {names}"
                )
            raise ConfigurationError(
                f"message content[{index}] is a {type(part).__name__}, not a part; build parts "
                "with TextPart, ImagePart, AudioPart, FilePart or ReasoningPart (an unknown "
                "part type cannot be sent to any model)"
            )
    return parts


def content_text(parts: tuple[Part, ...]) -> str:
    """The text parts of ``parts`` joined without separator (as LangChain's ``.text``)."""
    return "".join([p.text for p in parts if type(p) is TextPart])


class ContentChange(NamedTuple):
    """One change the route made to a request's content for one model.

    ``action`` is ``"stripped"`` (removed: only an optimisation, or only valid for its
    issuer), ``"converted"`` (sent in another form the model accepts) or ``"skipped"`` (the
    model could not take the part in any form and was not called: ``unsupported_input``).
    ``part`` names what changed (``"cache_control"``, ``"reasoning"``, ``"file"``,
    ``"tool_result"``, ``"input"``); ``detail`` says why.
    ``times`` is how many parts it affected.
    """

    model: str
    action: Literal["stripped", "converted", "skipped"]
    part: str
    detail: str
    times: int = 1

    def __str__(self) -> str:
        times = f" x{self.times}" if self.times != 1 else ""
        return f"{self.model}: {self.action} {self.part}{times} ({self.detail})"
