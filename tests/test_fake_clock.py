"""FakeClock's alarms: what fake-clock waits (a bulkhead's) are bounded by."""

from __future__ import annotations

from reliable_llm.testing import FakeClock


def test_alarms_ring_in_order_when_time_passes_them() -> None:
    """advance and sleep ring every alarm now due, earliest first, each once; later ones wait."""
    clock = FakeClock()
    rang: list[tuple[str, float]] = []
    for name, when in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("late", 10.0)]:
        clock.call_at(when, lambda name=name: rang.append((name, clock.monotonic())))
    clock.advance(0.5)
    assert rang == []
    clock.sleep(2.5)
    assert rang == [("a", 3.0), ("b", 3.0), ("c", 3.0)]
    clock.advance(100)
    assert rang[3:] == [("late", 103.0)]
    clock.advance(100)
    assert len(rang) == 4


def test_a_cancelled_alarm_never_rings_and_a_past_one_rings_at_once() -> None:
    """cancel() stops an alarm; an alarm set for a time already passed rings immediately."""
    clock = FakeClock(start=5.0)
    rang: list[str] = []
    clock.call_at(6.0, lambda: rang.append("kept"))
    clock.call_at(6.0, lambda: rang.append("cancelled")).cancel()
    clock.call_at(5.0, lambda: rang.append("now"))
    assert rang == ["now"]
    clock.advance(1.0)
    assert rang == ["now", "kept"]
    clock.call_at(1.0, lambda: rang.append("past")).cancel()  # ringing already happened
    assert rang == ["now", "kept", "past"]
