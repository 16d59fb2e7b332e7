"""Slow-wire faults: an answer that is right but arrives slowly, the way real servers stall.

Every read of such a response finishes within a socket read timeout, so only a deadline on
the whole call (ours, not the HTTP client's) notices. One `SlowWire` step combines the
knobs; the helpers build the common cases::

    server.script("gpt-4o", trickled_body(bytes_per_write=4, interval=0.4))
    server.script("gpt-4o", slow_headers(2.0))
    server.script("gpt-4o", keep_alive_comments(5, interval=0.2, comment="OPENROUTER PROCESSING"))
    server.script("claude-sonnet-4-5", anthropic_pings(3, interval=0.5))
"""

from __future__ import annotations

from dataclasses import dataclass

from ._steps import Fault, Reply

__all__ = [
    "SLOW_REPLY",
    "SlowWire",
    "anthropic_pings",
    "keep_alive_comments",
    "slow_headers",
    "trickled_body",
]

#: What a slow-wire step answers when it names no `Reply` of its own.
SLOW_REPLY = Reply("This answer arrives over a slow wire.")


@dataclass(frozen=True)
class SlowWire(Fault):
    """A correct answer delivered slowly; the knobs combine freely.

    Attributes:
        reply: The answer (JSON body or SSE stream, as the request asks); ``None`` sends
            `SLOW_REPLY`.
        header_delay: Seconds between the status line and the rest of the response head
            (the headers), so the client has seen the response start but cannot use it.
        trickle_bytes: Send the body (JSON, or every SSE event) this many bytes per write;
            0 sends it at once. The status line and headers are never trickled.
        trickle_interval: Seconds between two trickled writes.
        keep_alives: SSE comment lines (``: keep-alive``) sent right after the headers,
            before the first event, each after ``gap`` seconds.
        keep_alive_comment: The text of each comment, without the leading ``": "``
            (OpenRouter sends ``"OPENROUTER PROCESSING"``).
        keep_alive_between: Also send one comment between every two events.
        pings: Events sent just before the first content delta, each after ``gap``
            seconds: Anthropic ``event: ping``; an OpenAI-protocol stream, which has no ping
            event, gets a keep-alive comment instead.
        gap: Seconds before each keep-alive comment and each ping sent ahead of the answer.

    A non-streaming request cannot carry comments or pings: it waits as long as they would
    have taken (``(keep_alives + pings) * gap``) before its headers instead.

    Raises:
        ValueError: On a negative delay, interval, count or ``trickle_bytes``, or a comment
            with a line break.
    """

    reply: Reply | None = None
    header_delay: float = 0.0
    trickle_bytes: int = 0
    trickle_interval: float = 0.0
    keep_alives: int = 0
    keep_alive_comment: str = "keep-alive"
    keep_alive_between: bool = False
    pings: int = 0
    gap: float = 0.0

    def __post_init__(self) -> None:
        numbers = {
            "header_delay": self.header_delay,
            "trickle_bytes": self.trickle_bytes,
            "trickle_interval": self.trickle_interval,
            "keep_alives": self.keep_alives,
            "pings": self.pings,
            "gap": self.gap,
        }
        for name, value in numbers.items():
            if value < 0:
                raise ValueError(f"SlowWire {name} must be >= 0, got {value!r}")
        if "\n" in self.keep_alive_comment or "\r" in self.keep_alive_comment:
            raise ValueError("SlowWire keep_alive_comment must be one line")

    @property
    def answer(self) -> Reply:
        """The reply this step delivers."""
        return self.reply or SLOW_REPLY

    @property
    def comment_frame(self) -> bytes:
        """One SSE comment line, as sent on the wire."""
        return f": {self.keep_alive_comment}\n\n".encode()

    @property
    def preamble_seconds(self) -> float:
        """How long the comments and pings ahead of the answer take, in seconds."""
        return (self.keep_alives + self.pings) * self.gap


def trickled_body(
    reply: Reply | None = None, *, bytes_per_write: int = 4, interval: float = 0.4
) -> SlowWire:
    """Return a step whose body arrives ``bytes_per_write`` bytes every ``interval`` seconds.

    Headers come at once. A JSON body of ``n`` bytes takes about ``n / bytes_per_write *
    interval`` seconds; a stream trickles every event the same way.

    Raises:
        ValueError: If ``bytes_per_write`` is below one or ``interval`` is negative.
    """
    if bytes_per_write < 1:
        raise ValueError(f"bytes_per_write must be >= 1, got {bytes_per_write!r}")
    return SlowWire(reply, trickle_bytes=bytes_per_write, trickle_interval=interval)


def slow_headers(seconds: float, reply: Reply | None = None) -> SlowWire:
    """Return a step that sends its status line, then waits ``seconds`` before the headers.

    Raises:
        ValueError: If ``seconds`` is negative.
    """
    return SlowWire(reply, header_delay=seconds)


def keep_alive_comments(
    count: int,
    reply: Reply | None = None,
    *,
    interval: float = 0.0,
    comment: str = "keep-alive",
    between_events: bool = False,
) -> SlowWire:
    """Return a stream that sends ``count`` SSE comments, ``interval`` s apart, before its events.

    ``comment="OPENROUTER PROCESSING"`` is what OpenRouter sends while its upstream thinks;
    ``between_events=True`` also puts one comment between every two events.

    Raises:
        ValueError: On a negative count or interval, or a comment with a line break.
    """
    return SlowWire(
        reply,
        keep_alives=count,
        keep_alive_comment=comment,
        keep_alive_between=between_events,
        gap=interval,
    )


def anthropic_pings(count: int, reply: Reply | None = None, *, interval: float = 0.0) -> SlowWire:
    """Return a stream that sends ``count`` ``ping`` events, ``interval`` s apart, before its text.

    Raises:
        ValueError: On a negative count or interval.
    """
    return SlowWire(reply, pings=count, gap=interval)
