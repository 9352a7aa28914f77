"""Issue 22 on the bridge: slow clients, huge integers, long static names, costly trace reads.

Item 18: a request must arrive whole within one deadline, so clients trickling header lines
cannot hold every connection slot. The clock is injected: the tests move it past the deadline
and assert on events (the connection is closed, a slot frees up), not on durations.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import socket
import tracemalloc

import numpy as np
import pytest
from test_bridge import call, post_json, pytestmark  # noqa: F401 - skip mark

import calab
from calab import _protocol as P
from calab.bridge import BridgeServer, TuneSession
from calab.bridge.session import BridgeSession
from calab.tuning import TuningEngine

SECRET = "s" * 43
BIG = 10**400  # valid JSON, beyond float64's range: float() raises OverflowError


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def serve(traces: np.ndarray, **kw: object) -> BridgeServer:
    session = BridgeSession(TuningEngine(traces, 30.0), lam=0.02)
    server = BridgeServer(session, SECRET, **kw)  # type: ignore[arg-type]
    server.start()
    return server


def connect(server: BridgeServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed the connection (EOF or reset); False after 10 s without."""
    try:
        while data := sock.recv(4096):
            if b"HTTP/1.1 408" not in data:
                return False  # an answer other than "too slow"
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def health_ok(server: BridgeServer) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/api/v1/health", headers={P.BRIDGE_SECRET_HEADER: SECRET})
    ok = conn.getresponse().status == 200
    conn.close()
    return ok


# ---- item 18: slow-request attack ------------------------------------------------------------
def test_clients_trickling_headers_lose_their_slots_at_the_deadline(traces: np.ndarray) -> None:
    """The attack of the issue: every slot held by a client sending a header line now and then."""
    clock = Clock()
    server = serve(traces, timeout=30, max_connections=4, clock=clock)
    slow = []
    try:
        for _ in range(4):
            sock = connect(server)
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(sock)
        assert server.wait_open_connections(4)
        for sock in slow:  # a line well within the idle timeout: the socket timeout never fires
            sock.sendall(b"X-Slow: 1\r\n")
        clock.now = 30.5  # past the deadline of each request (30 s from its start)
        for sock in slow:
            try:
                sock.sendall(b"X-Slow: 2\r\n")
            except OSError:
                pass  # closed already
        assert all(closed_by_server(sock) for sock in slow)
        assert server.wait_open_connections(0)
        assert health_ok(server)  # the slots are free again
    finally:
        for sock in slow:
            sock.close()
        server.stop()


def test_a_body_trickled_past_the_deadline_is_answered_408(traces: np.ndarray) -> None:
    clock = Clock()
    server = serve(traces, timeout=30, clock=clock)
    head = (
        "POST /api/v1/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"{P.BRIDGE_SECRET_HEADER}: {SECRET}\r\nContent-Type: application/json\r\n"
        "Expect: 100-continue\r\nContent-Length: 100\r\n\r\n"
    )
    try:
        with connect(server) as sock:
            sock.sendall(head.encode())
            # The headers are read (in time): the server asks for the body.
            assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(b"{")
            clock.now = 31.0  # the body is not whole 30 s after the connection was accepted
            sock.sendall(b" ")
            answer = b""
            try:
                while chunk := sock.recv(4096):
                    answer += chunk
            except ConnectionResetError:
                pass
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"did not arrive whole within 30 s" in answer
        assert server.session.last_heartbeat is None  # the request was not served
        assert server.wait_open_connections(0)
    finally:
        server.stop()


def test_the_deadline_is_per_request_not_per_connection(traces: np.ndarray) -> None:
    """A keep-alive connection making a request now and then is served each time."""
    clock = Clock()
    server = serve(traces, timeout=30, clock=clock)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for step in range(4):
            clock.now = 25.0 * step  # each request well within 30 s of the previous answer
            conn.request("GET", "/api/v1/health", headers={P.BRIDGE_SECRET_HEADER: SECRET})
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b'{"ok": true}'
        conn.close()
    finally:
        server.stop()


def test_a_stalled_request_is_closed_by_the_real_clock(traces: np.ndarray) -> None:
    """The deadline on the real clock: a trickle that the per-read timeout would never stop.

    The client sends a header line every 0.05 s (each read waits far less than the timeout);
    the server must close the connection before 400 lines (20 s), long after its 0.5 s
    deadline. Without a deadline the client sends all 400 lines.
    """
    server = serve(traces, timeout=0.5)
    try:
        sock = connect(server)
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        for i in range(400):
            try:
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
                sock.settimeout(0.05)
                closed = sock.recv(4096) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
            if closed:
                break
        sock.close()
        assert closed
        assert server.wait_open_connections(0)
    finally:
        server.stop()


# ---- item 12: integers beyond float range ----------------------------------------------------
def state(bridge: TuneSession, changes: object) -> tuple[int, bytes]:
    status, _, body = post_json(bridge, "/api/v1/state", {"changes": changes})
    return status, body


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lam": BIG}, "lam"),
        ({"tau_rise": BIG}, "tau_rise"),
        ({"tau_decay": -BIG}, "tau_decay"),
        ({"pinned": {"tau_rise": 0.05, "tau_decay": BIG, "lam": 0.1}}, "pinned['tau_decay']"),
        ({"pinned": {"tau_rise": 0.05, "tau_decay": 0.5, "lam": BIG}}, "pinned['lam']"),
        ({"seed": BIG}, "seed"),
        ({"cells": [0, BIG]}, "cells[1]"),
        ({"window_start": -BIG}, "window_start"),
        ({"plot_width": BIG}, "plot_width"),
        ({"request_id": BIG}, "request_id"),
    ],
)
def test_huge_integers_in_state_changes_are_a_400_naming_the_key(
    bridge: TuneSession, changes: dict, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = bridge.session.snapshot()
    with caplog.at_level(logging.INFO, logger="calab.bridge"):
        status, body = state(bridge, changes)
    assert status == 400, body[:300]
    error = json.loads(body)["error"]
    assert error.startswith(field) and "401 digits" in error and len(error) < 300, error
    assert bridge.session.snapshot() == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _export(**overrides: object) -> dict:
    export = calab.export_dict(
        tau_rise=0.05, tau_decay=0.5, lam=[0.01, 0.02], fs=30.0, baseline="drift"
    )
    for path, value in overrides.items():
        *parents, leaf = path.split("__")
        node = export
        for key in parents:
            node = node[key]
        if isinstance(node.get(leaf), list):
            node[leaf][0] = value
        else:
            node[leaf] = value
    return export


#: Every number of an export that calab reads, as export keys joined by "__".
EXPORT_FIELDS = {
    "parameters__tau_rise_s": "parameters.tau_rise_s",
    "parameters__tau_decay_s": "parameters.tau_decay_s",
    "parameters__lambda": "parameters.lambda",
    "parameters__sampling_rate_hz": "parameters.sampling_rate_hz",
    "calab__lambda_per_cell": "calab.lambda_per_cell",
    "calab__baseline_window_s": "calab.baseline_window_s",
    "calab__format": "calab.format",
}


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("path", EXPORT_FIELDS)
def test_huge_integers_in_a_posted_export_are_a_400_naming_the_field(
    bridge: TuneSession, path: str, sign: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="calab.bridge"):
        status, _, body = post_json(bridge, "/api/v1/params", _export(**{path: sign * BIG}))
    assert status == 400, body[:300]
    error = json.loads(body)["error"]
    assert EXPORT_FIELDS[path] in error and "401 digits" in error and len(error) < 300, error
    assert not bridge.session.done.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_huge_cell_index_in_a_message_is_a_400(bridge: TuneSession) -> None:
    msg = {"message": {"type": P.MSG_REQ_SPECTRUM, "cell": BIG}}
    status, _, body = post_json(bridge, "/api/v1/message", msg)
    assert status == 400 and b"cell" in body


# ---- item 13: static names that are no file of the bundle ------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "a" * 5000 + ".js",  # File name too long (was a 500 with a traceback)
        "b" * 255 + ".css",
        "bridge.js" + "/" * 3000,
        "..%2fbridge.js",
        ".bridge.js",
        "bridge.py",
        "nope.js",
    ],
)
def test_static_names_outside_the_bundle_are_404_without_a_traceback(
    bridge: TuneSession, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="calab.bridge"):
        status, _, body = call(bridge, "GET", "/static/" + name, secret=None)
    assert status == 404 and json.loads(body) == {"error": "not found"}
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert call(bridge, "GET", "/static/bridge.js", secret=None)[0] == 200


# ---- item 22: GET /api/v1/traces without copies of the recording -----------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_traces_are_streamed_without_a_copy_of_the_recording(dtype: type) -> None:
    """Python's allocations (numpy's included) while a client reads a 24 MB recording.

    The old answer encoded it whole (a float64 copy, a BytesIO, its value): at least one
    recording's size per reader. Streamed, a reader costs a block or two of 1 MiB.
    """
    rec = np.random.default_rng(0).normal(size=(200, 15_000)).astype(dtype)
    expected = io.BytesIO()
    np.save(expected, rec.astype(np.float64), allow_pickle=False)
    digest = hashlib.sha256(expected.getvalue()).hexdigest()
    size = len(expected.getvalue())
    del expected
    server = serve(rec)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        tracemalloc.start()
        try:
            conn.request("GET", "/api/v1/traces", headers={P.BRIDGE_SECRET_HEADER: SECRET})
            resp = conn.getresponse()
            assert resp.status == 200 and int(resp.getheader("Content-Length")) == size
            h, got = hashlib.sha256(), 0
            while chunk := resp.read(1 << 16):
                h.update(chunk)
                got += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        conn.close()
    finally:
        server.stop()
    assert got == size and h.hexdigest() == digest  # np.save's bytes of the float64 traces
    assert peak < rec.size * 8 / 3, f"peak {peak / 2**20:.1f} MiB while reading the traces"


def test_head_of_traces_sends_the_length_only(bridge: TuneSession, traces: np.ndarray) -> None:
    status, headers, body = call(bridge, "HEAD", "/api/v1/traces")
    assert status == 200 and body == b""
    buf = io.BytesIO()
    np.save(buf, traces.astype(np.float64))
    assert int(headers["content-length"]) == len(buf.getvalue())
