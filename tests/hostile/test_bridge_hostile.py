"""Hostile clients against the bridge server: bad values, deep JSON, dropped and idle sockets."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import threading

import numpy as np
import pytest
from test_bridge import call, post_json, pytestmark, secret_of  # noqa: F401 - skip mark

from calab import _protocol as P
from calab.bridge import BridgeServer, TuneSession, framing
from calab.bridge.session import BridgeSession
from calab.tuning import TuningEngine


def state(session: TuneSession, changes: dict) -> tuple[int, bytes]:
    status, _, body = post_json(session, "/api/v1/state", {"changes": changes})
    return status, body


def test_deeply_nested_json_is_a_400(bridge: TuneSession) -> None:
    body = b'{"changes": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    assert len(body) < 1 << 20
    status, _, data = call(
        bridge, "POST", "/api/v1/state", body, {"Content-Type": "application/json"}
    )
    assert status == 400 and b"nested" in data
    assert call(bridge, "GET", "/api/v1/health")[0] == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"seed": -1},
        {"seed": 2**60},
        {"pinned": {"x": 1}},
        {"pinned": [1]},
        {"n_shown": 65},
        {"cells": []},
        {"columns": 0},
        {"plot_width": -1},
        {"window_stop": 10**9},
        {"selected_cell": 12},
        {"fs": 1e9},
        {"filter_enabled": "no"},
        {"tau_rise": True},
        {"lam": 0.5, "request_id": 3, "seed": -1},  # one bad key: nothing is stored
    ],
)
def test_bad_values_are_400_and_never_stored(bridge: TuneSession, changes: dict) -> None:
    before = bridge.session.snapshot()
    status, body = state(bridge, changes)
    assert status == 400, body
    assert bridge.session.snapshot() == before
    status, body = state(bridge, {"lam": 0.03, "request_id": 5})  # and later changes work
    assert status == 200
    view = [h for h, _ in framing.decode(body) if h["type"] == P.MSG_VIEW]
    assert view and view[0]["id"] == 5 and set(view[0]["states"]) == {"fresh"}


def test_cells_shown_are_capped_the_same_as_in_the_widget(bridge: TuneSession) -> None:
    assert state(bridge, {"n_shown": 64})[0] == 200
    assert state(bridge, {"n_shown": 65})[0] == 400


def test_bad_parameters_show_on_every_card_and_recover(bridge: TuneSession) -> None:
    status, body = state(bridge, {"tau_rise": 0.8, "request_id": 1})
    assert status == 200
    (view,) = [h for h, _ in framing.decode(body) if h["type"] == P.MSG_VIEW]
    assert view["id"] == 1 and set(view["states"]) == {"error"}
    assert all("tau_rise" in e for e in view["errors"])
    status, body = state(bridge, {"tau_rise": 0.05, "request_id": 2})
    (view,) = [h for h, _ in framing.decode(body) if h["type"] == P.MSG_VIEW]
    assert view["id"] == 2 and set(view["states"]) == {"fresh"}


def test_client_leaving_mid_request_logs_one_line_and_no_traceback(
    bridge: TuneSession, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    head = (
        "POST /api/v1/state HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{bridge.server.port}\r\n"
        "Content-Type: application/json\r\n"
        f"{P.BRIDGE_SECRET_HEADER}: {secret_of(bridge)}\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    with caplog.at_level(logging.INFO, logger="calab.bridge"):
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", bridge.server.port), timeout=10)
            sock.sendall(head + b'{"changes": {"lam": 0.0')
            # Reset instead of a clean close: the server's next read or write fails.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        assert call(bridge, "GET", "/api/v1/health")[0] == 200  # served after the five
        assert bridge.server.wait_open_connections(0, timeout=10)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Traceback" not in caplog.text
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 5 and all(r.exc_info is None for r in gone)
    assert bridge.session.snapshot()["lam"] == 0.02


def test_client_leaving_before_the_answer_gets_no_traceback(
    bridge: TuneSession, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """No secret, large answer, client gone: the server's write fails (EPIPE / reset)."""
    request = f"GET /api/v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{bridge.server.port}\r\n\r\n"
    with caplog.at_level(logging.INFO, logger="calab.bridge"):
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", bridge.server.port), timeout=10)
            sock.sendall(request.encode())
            sock.close()
        assert bridge.server.wait_open_connections(0, timeout=10)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Traceback" not in caplog.text
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) <= 20 and all(r.exc_info is None for r in gone)
    assert call(bridge, "GET", "/api/v1/health")[0] == 200


def small_server(traces: np.ndarray, **kw: float) -> BridgeServer:
    session = BridgeSession(TuningEngine(traces, 30.0), lam=0.02)
    server = BridgeServer(session, "s" * 43, **kw)  # type: ignore[arg-type]
    server.start()
    return server


def test_idle_connections_time_out(traces: np.ndarray) -> None:
    server = small_server(traces, timeout=0.2)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        assert sock.recv(1) == b""  # the server closed the idle connection
        sock.close()
        assert server.wait_open_connections(0, timeout=10)
    finally:
        server.stop()


def test_concurrent_connections_are_capped(traces: np.ndarray) -> None:
    server = small_server(traces, timeout=30, max_connections=4)
    threads_before = threading.active_count()
    idle = []
    try:
        for _ in range(4):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        assert server.wait_open_connections(4, timeout=10)
        extra = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            extra.append(s)
            s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 503")
        assert server.refused_connections == 50
        assert threading.active_count() <= threads_before + 4
        for s in extra:
            s.close()
        idle.pop().close()  # a slot frees up: the next client is served
        assert server.wait_open_connections(3, timeout=10)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/api/v1/health", headers={P.BRIDGE_SECRET_HEADER: "s" * 43})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_fuzzed_state_changes_keep_the_state_valid(bridge: TuneSession) -> None:
    """Random values for every key: each is 200 (stored, valid) or 400 (nothing stored)."""
    rng = np.random.default_rng(7)
    pool = [None, True, -1, 0, 1, 3, 64, 65, 2**53, -0.5, 0.3, 1e308, "x", [], [1, 2],
            {"a": 1}, [0] * 70, {"tau_rise": 0.1, "tau_decay": 0.05, "lam": 1}, "active",
            "index"]  # fmt: skip
    for i in range(150):
        key = str(rng.choice(P.STATE_KEYS))
        value = pool[int(rng.integers(len(pool)))]
        before = bridge.session.snapshot()
        status, body = state(bridge, {key: value, "request_id": 1000 + i})
        assert status in (200, 400), (key, value, status, body[:200])
        after = bridge.session.snapshot()
        if status == 400:
            assert after == before, (key, value)
        else:
            assert json.dumps(after)  # a plain JSON state
    assert call(bridge, "GET", "/api/v1/health")[0] == 200
