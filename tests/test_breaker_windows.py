"""The sliding windows keep the same totals as recounting every outcome from scratch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reliable_llm._windows import BUCKETS, CountWindow, TimeWindow

_Calls = list[tuple[float, tuple[int, int]]]
_OUTCOMES = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=7, allow_nan=False),  # seconds since the last call
        st.tuples(st.integers(0, 1), st.integers(0, 1)),  # (failed, slow)
    ),
    max_size=300,
)


@given(st.integers(min_value=1, max_value=40), _OUTCOMES)
def test_count_window_totals_the_last_n_calls(size: int, calls: _Calls) -> None:
    """After any sequence, a count window holds exactly the last `size` calls' outcomes."""
    window = CountWindow(size, 2)
    for _, outcome in calls:
        window.add(0.0, outcome)
    last = [outcome for _, outcome in calls][-size:] if calls else []
    assert window.read(0.0) == (len(last), [sum(o[0] for o in last), sum(o[1] for o in last)])


@given(st.floats(min_value=0.5, max_value=60), _OUTCOMES)
def test_time_window_totals_the_calls_of_its_buckets(span: float, calls: _Calls) -> None:
    """A time window counts exactly the calls in its last BUCKETS buckets of span/BUCKETS s."""
    window = TimeWindow(span, 2)
    width = span / BUCKETS
    now = 1000.0
    seen: list[tuple[float, tuple[int, int]]] = []
    for gap, outcome in calls:
        now += gap
        window.add(now, outcome)
        seen.append((now, outcome))
    now += 1.0
    newest = now // width
    kept = [o for t, o in seen if t // width > newest - BUCKETS]
    assert window.read(now) == (len(kept), [sum(o[0] for o in kept), sum(o[1] for o in kept)])
