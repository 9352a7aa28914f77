"""``calab.tune()``: the tuning UI in a standalone browser page, served from this process.

The page is the same UI bundle as the notebook widget, talking to a local HTTP server (see
:mod:`calab.bridge.server`) that solves with the same Rust code, windowing, warm starts and
cancellation. Works offline: the page comes from the package itself.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
import warnings
import webbrowser
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from calab._bundle import missing_bundle_error
from calab.bridge.server import STATIC_DIR, BridgeServer
from calab.bridge.session import BridgeSession
from calab.tuning import TuningEngine
from calab.tuning.session import StartValues

logger = logging.getLogger(__name__)

__all__ = ["BridgeServer", "BridgeSession", "TuneSession", "start", "tune"]


class TuneSession:
    """A running bridge: server, session and the URL to open. Use :func:`start` to make one."""

    def __init__(self, server: BridgeServer, session: BridgeSession, url: str) -> None:
        self.server = server
        self.session = session
        self.url = url

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block until Export (the parameter dict), the timeout, or the page going away (None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.session.done.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                logger.info("calab.tune: timed out after %s s without an export", timeout)
                return None
            if self.session.page_gone():
                warnings.warn(
                    "calab.tune: the tuning page stopped sending heartbeats (tab closed?) "
                    "before Export was clicked; no parameters were returned",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return None
        return self.session.result

    def close(self) -> None:
        """Stop the server and free its port."""
        self.server.stop()
        self.session.close()

    def __enter__(self) -> TuneSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(
    traces: Any,
    fs: float = 30.0,
    *,
    tau_rise: float | None = None,
    tau_decay: float | None = None,
    lam: float | None = None,
    lam_mode: str | None = None,
    baseline: str | None = None,
    filter_enabled: bool = False,
    truth: Any = None,
    port: int | None = None,
    app_url: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> TuneSession:
    """Start a bridge server without blocking (``tune`` = ``start`` + open + ``wait``)."""
    values = StartValues(tau_rise, tau_decay, lam, lam_mode, baseline, filter_enabled)
    return _start(traces, fs, values, truth, port, app_url, metadata)


def _start(
    traces: Any,
    fs: float,
    values: StartValues,
    truth: Any,
    port: int | None,
    app_url: str | None,
    metadata: Mapping[str, Any] | None,
) -> TuneSession:
    """Do :func:`start` with the start values built once."""
    engine = TuningEngine(traces, fs, truth=truth)
    session = BridgeSession(engine, metadata=metadata, **values.keywords())
    if port is not None and (isinstance(port, bool) or not 0 <= int(port) <= 65535):
        raise ValueError(f"port must be 0..65535 (0 or None for a free port), got {port!r}")
    allowed_origin = None
    if app_url is not None:
        parts = urlsplit(app_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"app_url must be an http(s) URL, got {app_url!r}")
        allowed_origin = f"{parts.scheme}://{parts.netloc}"
    elif not (STATIC_DIR / "bridge.js").is_file():
        raise missing_bundle_error(STATIC_DIR / "bridge.js")
    secret = secrets.token_urlsafe(32)
    server = BridgeServer(session, secret, port=int(port or 0), allowed_origin=allowed_origin)
    server.start()
    if app_url is None:
        # Our own page talks to the server it came from, so the URL works through an SSH
        # tunnel from any local port once its host and port are changed.
        return TuneSession(server, session, f"{server.base_url}/?bridge_secret={secret}")
    query = urlencode({"bridge": server.base_url, "bridge_secret": secret})
    sep = "&" if urlsplit(app_url).query else "?"
    return TuneSession(server, session, f"{app_url}{sep}{query}")


def tune(
    traces: Any,
    fs: float = 30.0,
    timeout: float | None = None,
    port: int | None = None,
    app_url: str | None = None,
    open_browser: bool = True,
    *,
    tau_rise: float | None = None,
    tau_decay: float | None = None,
    lam: float | None = None,
    lam_mode: str | None = None,
    baseline: str | None = None,
    filter_enabled: bool = False,
    output: str | Path | None = None,
    truth: Any = None,
    on_url: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """Tune parameters in the browser; return them when the person clicks Export.

    Starts a server on 127.0.0.1 (a free port unless ``port`` is given) that serves the calab
    tuning page from the package (no internet needed) and solves with the same Rust code as
    :class:`calab.TuneWidget`. Every request needs a per-session secret that only the opened
    URL carries. Blocks until Export, the timeout, or the page going away.

    The first six arguments may be given by position in the CaLab package's order
    (``traces, fs, timeout, port, app_url, open_browser``); the rest are keywords.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames) or (n_frames,)
        Fluorescence traces (they stay in this process; the page gets only what it shows).
    fs : float
        Sampling rate in Hz.
    tau_rise, tau_decay, lam, lam_mode, baseline, filter_enabled
        Start values, as for :class:`calab.TuneWidget`: given none of ``tau_rise``,
        ``tau_decay``, ``lam``, the page starts from :func:`calab.estimate_parameters`
        (per-cell sparsity in noise SDs, the estimate's baseline); otherwise ``lam`` defaults
        to 1 % of the value that zeroes all activity and the kernel to 0.05 s / 0.5 s.
    timeout : float, optional
        Seconds to wait for Export; then return None (the server is stopped either way).
    port : int, optional
        Port to listen on (default: a free one).
    open_browser : bool
        Open the system browser; False prints the URL on stdout instead (when no browser
        opens, it is printed on stderr). On a remote machine, forward the port with SSH and
        open the URL with your end's host and port (see the README).
    app_url : str, optional
        Another front end speaking the CaTune bridge protocol (e.g. a hosted CaTune); it is
        opened with ``?bridge=...&bridge_secret=...`` and allowed by CORS.
    output : str or Path, optional
        Also write the CaTune export JSON there (an existing file is kept).
    truth : array_like, optional
        Known spikes (simulated data), drawn on demand.
    on_url : callable, optional
        Called with the page URL once the server runs (instead of printing it).

    Returns
    -------
    dict or None
        ``{'tau_rise', 'tau_decay', 'lambda_', 'fs', 'filter_enabled'}`` as
        :func:`calab.load_export_params` returns (plus ``lambda_per_cell`` in per-cell mode
        and ``baseline`` when it is ``"drift"``), or None on timeout / page closed.
    """
    if output is not None and Path(output).exists():
        raise FileExistsError(f"{output} exists; choose another output path or delete it")
    values = StartValues(tau_rise, tau_decay, lam, lam_mode, baseline, filter_enabled)
    session = _start(traces, fs, values, truth, port, app_url, None)
    with session:
        if on_url is not None:
            on_url(session.url)
        elif not open_browser:
            print(session.url, flush=True)  # on stdout, as the CaLab package
        elif not webbrowser.open(session.url):
            print(f"Open this URL to tune: {session.url}", file=sys.stderr, flush=True)
        result = session.wait(timeout)
        if result is not None and output is not None and session.session.export is not None:
            from calab.io.export import write_export

            write_export(output, session.session.export)
        return result
