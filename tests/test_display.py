"""Rich display: text and HTML summaries, the metrics history and its plot."""

from __future__ import annotations

import sys

import pytest

from reliable_llm import (
    BreakerPolicy,
    ConfigurationError,
    LLMManager,
    MetricsHistory,
    MetricsSnapshot,
    ServerError,
)
from reliable_llm.testing import FakeClock, Reply, ScriptedModel


@pytest.fixture
def outage(clock: FakeClock) -> tuple[LLMManager, MetricsHistory]:
    """A manager whose primary's breaker is open after a fallback, plus one cache hit."""
    manager = LLMManager(max_retries=1, clock=clock, random=lambda: 0.0)
    history = MetricsHistory(manager)
    manager.register_model(
        "primary", ScriptedModel(default=ServerError("down")), breaker=BreakerPolicy(2, 60)
    )
    manager.register_model("backup", ScriptedModel(default=Reply("b", latency=0.25), clock=clock))
    manager.set_fallback_chain(["backup"])
    manager.generate("one")
    manager.generate("two")
    manager.generate("two")
    return manager, history


def test_text_table_shows_states_and_numbers(outage: tuple[LLMManager, MetricsHistory]) -> None:
    """str(manager) is a table with the open breaker, the fallback pair and the cache hit."""
    manager, _ = outage
    text = str(manager)
    primary_row = next(line for line in text.splitlines() if line.startswith("primary"))
    assert primary_row.split()[:6] == ["primary", "*", "open", "2", "0", "2"]
    assert "fallbacks 2 (primary->backup: 2)" in text
    assert "cache    1 hits / 2 misses (hit rate 33%" in text
    assert "requests 3 (ok 3, failed 0, cancelled 0, success rate 100%)" in text


def test_html_summary_shows_states_and_numbers(outage: tuple[LLMManager, MetricsHistory]) -> None:
    """The Jupyter HTML colours the open breaker and reports fallbacks and hits."""
    manager, _ = outage
    html = manager._repr_html_()
    assert "background:#ffebee;color:#b71c1c;font-weight:bold'>open</td>" in html
    assert "primary <b>(active)</b>" in html
    assert "primary-&gt;backup: 2" in html
    assert "1 hits / 2 misses" in html
    assert "route: primary → backup" in html
    snapshot = manager.get_metrics()
    assert isinstance(snapshot, MetricsSnapshot) and isinstance(snapshot, dict)
    assert snapshot._repr_html_() == html
    assert snapshot.table() == str(manager)


def test_html_escapes_model_names(clock: FakeClock) -> None:
    """Model names are escaped in HTML."""
    manager = LLMManager(clock=clock)
    manager.register_model("<script>", ScriptedModel())
    assert "&lt;script&gt;" in manager._repr_html_()
    assert "<script>" not in manager._repr_html_()


def test_history_records_the_timeline(outage: tuple[LLMManager, MetricsHistory]) -> None:
    """The history holds each request, retry, fallback and transition with its time."""
    _, history = outage
    assert [(r.served_by, r.cached) for r in history.requests] == [
        ("backup", False),
        ("backup", False),
        ("backup", True),
    ]
    assert len(history.retries) == 1
    assert [f[1:] for f in history.fallbacks] == [("primary", "backup")] * 2
    assert [(s.model, s.state.value) for s in history.states] == [("primary", "open")]
    assert history.requests[1].time == pytest.approx(0.5 + 1.0)


def test_plot_has_the_expected_series(outage: tuple[LLMManager, MetricsHistory]) -> None:
    """The figure has latency points per model, breaker bands and retry/fallback bars."""
    from reliable_llm.plotting import plot_history

    _, history = outage
    figure = plot_history(history, bucket=1.0)
    latency_ax, state_ax, count_ax = figure.axes
    labels = [t.get_text() for t in latency_ax.get_legend().get_texts()]
    assert labels == ["served by backup", "backup (cache hit)"]
    assert [len(c.get_offsets()) for c in latency_ax.collections] == [2, 1]
    assert [t.get_text() for t in state_ax.get_yticklabels()] == ["primary", "backup"]
    bars = {c.get_label(): sum(p.get_height() for p in c.patches) for c in count_ax.containers}
    assert bars == {"retries": 1, "fallbacks": 2}


def test_plot_without_matplotlib_names_the_extra(
    outage: tuple[LLMManager, MetricsHistory], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib the error says which extra to install."""
    from reliable_llm.plotting import plot_history

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigurationError, match=r"reliable-llm\[plot\]"):
        plot_history(outage[1])


def test_html_headers_align_with_their_columns(
    outage: tuple[LLMManager, MetricsHistory],
) -> None:
    """Each header of the HTML table is aligned like the cells of its column."""
    from html.parser import HTMLParser

    class Alignments(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "tr":
                self.rows.append([])
            elif tag in ("th", "td"):
                style = dict(attrs).get("style") or ""
                align = [p for p in style.split(";") if p.startswith("text-align")]
                self.rows[-1].append(align[-1] if align else "")

    parser = Alignments()
    parser.feed(outage[0]._repr_html_())
    header, *rows = parser.rows
    assert header[:2] == ["text-align:left"] * 2
    assert header[2:] == ["text-align:right"] * 8
    assert rows and all(row == header for row in rows)


def test_plot_displays_as_an_image_in_a_fresh_kernel() -> None:
    """plot_history(...) as a cell's last expression shows a PNG with no %matplotlib magic."""
    import nbformat
    from nbclient import NotebookClient

    code = (
        "from reliable_llm import LLMManager, MetricsHistory\n"
        "from reliable_llm.plotting import plot_history\n"
        "manager = LLMManager()\n"
        "history = MetricsHistory(manager)\n"
        "manager.register_model('m', lambda prompt, **kw: 'ok')\n"
        "manager.generate('hi')\n"
        "plot_history(history)"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    (output,) = notebook.cells[0].outputs
    assert output["output_type"] == "execute_result"
    assert output["data"]["image/png"]  # base64 PNG next to the text repr
    assert output["data"]["text/plain"].startswith("<")
