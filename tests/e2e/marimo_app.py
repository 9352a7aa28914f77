"""A marimo app holding the tuning widget, for tests/e2e/test_marimo_e2e.py.

Run by hand: ``marimo run tests/e2e/marimo_app.py`` (or ``marimo edit``).
"""

import marimo

app = marimo.App(width="medium")


@app.cell
def _():
    import json

    import marimo as mo

    import calab

    traces, _spikes = calab.simulate(4, 3000, 30.0, seed=3)
    w = calab.TuneWidget(traces, fs=30.0, n_shown=2)
    tuner = mo.ui.anywidget(w)
    tuner  # noqa: B018 - the cell shows its last expression
    return json, mo, tuner, w


@app.cell
def _(json, mo, tuner, w):
    # Re-runs on every change from the page; shows what the Python object holds.
    _ = tuner.value
    mo.Html(
        '<pre data-testid="python-state">'
        + json.dumps({"tau_decay": w.tau_decay, "lam": w.lam})
        + "</pre>"
    )
    return


if __name__ == "__main__":
    app.run()
