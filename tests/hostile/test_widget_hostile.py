"""A careless or hostile notebook user against TuneWidget: bad values are refused, never kept."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import calab
from calab import _protocol as P

pytest.importorskip("anywidget")

FS = 30.0


@pytest.fixture(scope="module")
def traces() -> np.ndarray:
    return calab.simulate(6, 2000, FS, 0.05, 0.5, seed=5)[0]


def views_of(w: calab.TuneWidget) -> list[dict]:
    sent: list[dict] = []
    w.send = lambda content, buffers=None: sent.append(content)
    return sent


@pytest.mark.parametrize(
    ("key", "bad", "match"),
    [
        ("pinned", {"x": 1}, "pinned"),
        ("pinned", {"tau_rise": 0.5, "tau_decay": 0.1, "lam": 0.0}, "pinned"),
        ("pinned", [1, 2], "pinned"),
        ("seed", -1, "seed"),
        ("seed", 1.5, "seed"),
        ("filter_enabled", "no", "filter_enabled"),
        ("tau_rise", True, "tau_rise"),
        ("tau_decay", "0.5", "tau_decay"),
        ("lam", -1.0, "lam"),
        ("cells", [0, 99], "cells"),
        ("n_shown", 65, "n_shown"),
        ("columns", 0, "columns"),
        ("window_start", -5, "window_start"),
        ("plot_width", 10**9, "plot_width"),
        ("cell_mode", "all", "cell_mode"),
        ("selected_cell", 6, "selected_cell"),
        ("fs", 1e9, "fs"),
        ("n_cells", 10**6, "n_cells"),
        ("n_frames", 5, "n_frames"),
    ],
)
def test_bad_assignment_raises_and_keeps_the_old_value(traces, key, bad, match):
    w = calab.TuneWidget(traces, fs=FS, threaded=False)
    old = getattr(w, key)
    with pytest.raises((ValueError, TypeError), match=match):
        setattr(w, key, bad)
    assert getattr(w, key) == old
    sent = views_of(w)
    w.lam = 0.02  # later valid changes still work
    assert sent and sent[-1]["type"] == P.MSG_VIEW and sent[-1]["params"]["lam"] == 0.02
    assert sent[-1]["states"] == ["fresh"] * len(w.cells)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"filter_enabled": "no"}, "filter_enabled"),
        ({"tau_rise": True}, "tau_rise"),
        ({"lam": "0.1"}, "lam"),
        ({"n_shown": 0}, "n_shown"),
        ({"n_shown": 65}, "n_shown"),
        ({"columns": 2.5}, "columns"),
    ],
)
def test_bad_start_values_are_refused(traces, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        calab.TuneWidget(traces, fs=FS, threaded=False, **kwargs)


def test_spectrum_of_a_cell_that_does_not_exist_is_refused(traces, caplog):
    w = calab.TuneWidget(traces, fs=FS, threaded=False)
    sent = views_of(w)
    with caplog.at_level(logging.WARNING):
        w._on_msg(w, {"type": P.MSG_REQ_SPECTRUM, "cell": -1}, [])
        w._on_msg(w, {"type": P.MSG_REQ_SPECTRUM, "cell": 6}, [])
    assert not [m for m in sent if m["type"] == P.MSG_SPECTRUM]
    assert caplog.text.count("cell must be in 0..5") == 2
    w._on_msg(w, {"type": P.MSG_REQ_SPECTRUM, "cell": 5}, [])
    assert [m["cell"] for m in sent if m["type"] == P.MSG_SPECTRUM] == [5]


@pytest.mark.parametrize("chunk", [0, -3, 2.5, True])
def test_deconvolve_names_a_bad_chunk_size(traces, chunk):
    w = calab.TuneWidget(traces, fs=FS, threaded=False)
    with pytest.raises(ValueError, match="chunk_cells"):
        w.deconvolve(chunk_cells=chunk, progress=False)


def test_page_changes_are_checked_as_a_whole(traces, caplog):
    """A change set from the page with one bad key is refused entirely (nothing stored)."""
    w = calab.TuneWidget(traces, fs=FS, threaded=False)
    before = {k: getattr(w, k) for k in P.STATE_KEYS}
    sent = views_of(w)
    with caplog.at_level(logging.WARNING):
        w.set_state({"lam": 0.5, "request_id": 9, "seed": -1})
    assert "seed" in caplog.text
    assert w._session.state == {**before, "request_id": 9}
    assert {k: getattr(w, k) for k in P.STATE_KEYS} == {**before, "request_id": 9}
    # The page's cards are answered (with the last valid parameters), not left "solving".
    assert sent[-1]["type"] == P.MSG_VIEW and sent[-1]["id"] == 9
    assert sent[-1]["params"]["lam"] == before["lam"]


SCRIPT = textwrap.dedent(
    """
    import calab
    traces = calab.simulate(16, 20000, 100.0, 0.05, 0.5, seed=1)[0]
    w = calab.TuneWidget(traces, fs=100.0, n_shown=16)
    for k in range(50):
        w.lam = 0.01 + 0.0001 * k
    """
)


def test_a_script_that_makes_a_widget_and_exits_never_aborts(tmp_path):
    """The solver thread is stopped and joined before the interpreter finalizes.

    Without that, the worker returning from the Rust solver while the interpreter finalizes
    aborts the process ("FATAL: exception not rethrown"): 2 of 25 runs of this script here
    (1 of 6 in the issue report).
    """
    script = tmp_path / "make_widget.py"
    script.write_text(SCRIPT)
    codes = []
    for _ in range(30):
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120
        )
        codes.append((proc.returncode, proc.stderr[-300:]))
    assert [c for c in codes if c[0] != 0] == []
