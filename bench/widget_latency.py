"""Slider-to-redraw latency of calab.TuneWidget in a real JupyterLab + Debian Chromium.

The page records the time from each slider ``input`` event to the frame after the redrawn
plots (performance.now(), into an array on the widget's root element). The measuring loop runs
inside the page; the driver disconnects from the browser (CDP) during the measurement, so it
does not mirror websocket traffic, and reconnects afterwards to read the timings.

Usage::

    .venv/bin/python bench/widget_latency.py                 # 5 x 9,000 and 2,000 x 100,000
    .venv/bin/python bench/widget_latency.py --sizes 5x9000 --moves 60 --nodelay

``--nodelay`` sets TCP_NODELAY on the server's websockets (jupyter_server does not; small
replies then wait ~40 ms on Nagle + delayed ACK). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from e2e.harness import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    ensure_chromium,
    free_port,
    open_and_run,
    python_notebook,
    start_lab,
)

# Runs in the page: move the lambda slider `moves` times, each after the previous redraw.
DRIVE = """([moves]) => {
  const root = document.querySelector('[data-testid=calab-tuner]');
  const slider = root.querySelector('[data-testid=param-lambda]');
  const lam0 = Number(slider.value);
  root.calabTimings.length = 0;
  root.calabBreakdown.length = 0;
  root.dataset.benchDone = '0';
  let i = 0;
  const step = () => {
    if (i >= moves) { root.dataset.benchDone = '1'; return; }
    const want = Number(root.dataset.rev) + 1;
    slider.value = String(lam0 * (1 + 0.02 * ((i % 20) + 1)));
    slider.dispatchEvent(new Event('input', { bubbles: true }));
    i += 1;
    const wait = () => (Number(root.dataset.rev) >= want && root.calabTimings.length >= i)
      ? setTimeout(step, 30) : requestAnimationFrame(wait);
    requestAnimationFrame(wait);
  };
  step();
  return true;
}"""


def notebook(n_cells: int, n_frames: int) -> nbformat.NotebookNode:
    return python_notebook(
        "import calab\n"
        f"traces, _ = calab.simulate({n_cells}, {n_frames}, 30.0, seed=0)\n"
        "w = calab.TuneWidget(traces, fs=30.0, n_shown=5, columns=1)\n"
        "w"
    )


def measure(size: str, moves: int, nodelay: bool) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    n_cells, n_frames = (int(v) for v in size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        lab = start_lab(tmp / "lab", tcp_nodelay=nodelay)
        port = free_port()
        browser_proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={tmp / 'chrome'}",
                "--window-size=1400,1000",
                *CHROMIUM_ARGS,
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            nbformat.write(notebook(n_cells, n_frames), lab.root / "bench.ipynb")
            cdp = f"http://127.0.0.1:{port}"
            with sync_playwright() as pw:
                for _ in range(100):
                    try:
                        browser = pw.chromium.connect_over_cdp(cdp)
                        break
                    except Exception:  # noqa: BLE001 - browser still starting
                        time.sleep(0.2)
                page = browser.contexts[0].pages[0]
                open_and_run(page, lab, "bench.ipynb")
                page.wait_for_function(
                    """() => { const r = document.querySelector('[data-testid=calab-tuner]');
                      return r && [...r.querySelectorAll('[data-testid=cell-card]')]
                        .every(c => c.dataset.state === 'fresh'); }""",
                    timeout=300_000,
                )
                page.wait_for_timeout(1000)
                page.evaluate(DRIVE, [moves])
                browser.close()  # CDP: disconnects only; the page keeps measuring alone
                time.sleep(2.0)
                timings: list[float] = []
                parts: list[dict[str, float]] = []
                for _ in range(600):
                    browser = pw.chromium.connect_over_cdp(cdp)
                    page = browser.contexts[0].pages[0]
                    done = page.evaluate(
                        """() => { const r = document.querySelector('[data-testid=calab-tuner]');
                          return [r.dataset.benchDone, JSON.stringify(r.calabTimings),
                                  JSON.stringify(r.calabBreakdown)]; }"""
                    )
                    if done[0] == "1":
                        timings = json.loads(done[1])
                        parts = json.loads(done[2])
                        browser.close()
                        break
                    browser.close()
                    time.sleep(1.0)
        finally:
            browser_proc.terminate()
            browser_proc.wait(10)
            lab.stop()
    med = statistics.median
    # Per move, the page's share: from the reply's arrival to the next animation frame (drawing,
    # the canvases' rasterisation, waiting for the frame); steadier than the total on a busy host.
    after = [t - p["recv"] for t, p in zip(timings, parts, strict=True)]
    timings.sort()
    return {
        "moves": len(timings),
        # Where the time goes (medians): the reply's arrival after the input (kernel messaging +
        # solve + transport), the solve alone, and drawing after arrival.
        "reply_ms": med(p["recv"] for p in parts),
        "solve_ms": med(p["solve"] for p in parts),
        "draw_ms": med(p["draw"] for p in parts),
        "after_ms": med(after),
        "median_ms": statistics.median(timings),
        "p90_ms": timings[int(0.9 * (len(timings) - 1))],
        "min_ms": timings[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["5x9000", "2000x100000"])
    ap.add_argument("--moves", type=int, default=40)
    ap.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY on the websockets")
    args = ap.parse_args()
    reason = ensure_chromium()
    if reason:
        sys.exit(f"widget_latency: {reason}")
    for size in args.sizes:
        r = measure(size, args.moves, args.nodelay)
        print(
            f"{size:>12} cells x frames  nodelay={args.nodelay!s:5}  moves={r['moves']}  "
            f"median={r['median_ms']:.1f} ms  p90={r['p90_ms']:.1f} ms  min={r['min_ms']:.1f} ms",
            flush=True,
        )
        print(
            f"{'':>12} of which (medians): reply arrives {r['reply_ms']:.1f} ms after the input "
            f"(kernel solve {r['solve_ms']:.1f} ms), drawing {r['draw_ms']:.1f} ms, then the "
            f"next animation frame; reply to frame {r['after_ms']:.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
