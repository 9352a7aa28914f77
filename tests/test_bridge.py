"""The browser bridge behind calab.tune(): protocol, security rules, robustness (no browser)."""

from __future__ import annotations

import http.client
import io
import json
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

import calab
from calab import _protocol as P
from calab.bridge import TuneSession, framing, start
from calab.bridge.server import MAX_BODY
from calab.tuning.session import Reply

pytestmark = pytest.mark.skipif(
    not (calab.bridge.STATIC_DIR / "bridge.js").is_file(),
    reason="the UI bundle is not built (run `make js`)",
)


@pytest.fixture(scope="module")
def traces() -> np.ndarray:
    return calab.simulate(12, 2000, seed=4)[0]


@pytest.fixture
def bridge(traces: np.ndarray) -> Iterator[TuneSession]:
    session = start(traces, 30.0, tau_rise=0.05, tau_decay=0.5, lam=0.02)
    yield session
    session.close()


def secret_of(session: TuneSession) -> str:
    return session.url.split("bridge_secret=")[1]


def call(
    session: TuneSession,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    secret: str | None = "auto",
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", session.server.port, timeout=10)
    h = dict(headers or {})
    if secret == "auto":
        h[P.BRIDGE_SECRET_HEADER] = secret_of(session)
    elif secret is not None:
        h[P.BRIDGE_SECRET_HEADER] = secret
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def post_json(session: TuneSession, path: str, obj: Any, **kw: Any) -> tuple[int, Any, bytes]:
    return call(
        session, "POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"}, **kw
    )


def test_binds_loopback_and_url_carries_the_secret(bridge: TuneSession) -> None:
    assert bridge.server.server_address[0] == "127.0.0.1"
    # Only the secret: our page talks to the server it came from (works through a tunnel).
    assert bridge.url.startswith(f"http://127.0.0.1:{bridge.server.port}/?bridge_secret=")
    assert "bridge=" not in bridge.url.replace("bridge_secret=", "")
    assert len(secret_of(bridge)) >= 40


@pytest.mark.parametrize(
    "path", ["/api/v1/health", "/api/v1/status", "/api/v1/metadata", "/api/v1/traces"]
)
def test_api_needs_the_secret(bridge: TuneSession, path: str) -> None:
    assert call(bridge, "GET", path, secret=None)[0] == 401
    assert call(bridge, "GET", path, secret="wrong")[0] == 401
    assert call(bridge, "GET", path, secret=secret_of(bridge) + "x")[0] == 401
    assert call(bridge, "GET", path)[0] == 200


def test_catune_protocol_endpoints(bridge: TuneSession, traces: np.ndarray) -> None:
    status, _, body = call(bridge, "GET", "/api/v1/status")
    assert json.loads(body) == {"ready": True, "app": "catune"}
    status, _, body = call(bridge, "GET", "/api/v1/metadata")
    assert json.loads(body) == {"sampling_rate_hz": 30.0, "num_cells": 12, "num_timepoints": 2000}
    status, headers, body = call(bridge, "GET", "/api/v1/traces")
    assert headers["content-type"] == "application/octet-stream"
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), traces)
    assert post_json(bridge, "/api/v1/heartbeat", {})[0] == 200
    assert bridge.session.last_heartbeat is not None


def test_state_change_answers_with_a_fresh_binary_view(bridge: TuneSession) -> None:
    status, headers, body = post_json(bridge, "/api/v1/message", {"message": {"type": P.MSG_HELLO}})
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    kinds = [h["type"] for h, _ in framing.decode(body)]
    assert kinds == [P.MSG_STATE, P.MSG_OVERVIEW, P.MSG_VIEW]
    status, _, body = post_json(
        bridge, "/api/v1/state", {"changes": {"tau_decay": 0.8, "request_id": 7}}
    )
    (header, buffers), *_ = [m for m in framing.decode(body) if m[0]["type"] == P.MSG_VIEW]
    assert header["id"] == 7 and header["params"]["tau_decay"] == 0.8
    data = np.frombuffer(buffers[0], dtype=np.float32).reshape(header["shape"])
    assert np.isfinite(data).any()
    # Only what is on screen travels: bins follow the plot width, not the trace length.
    assert header["shape"][2] <= 600


def test_server_chooses_cells_and_says_so(bridge: TuneSession) -> None:
    _, _, body = post_json(
        bridge, "/api/v1/state", {"changes": {"cell_mode": "random", "seed": 3, "request_id": 1}}
    )
    state = [h for h, _ in framing.decode(body) if h["type"] == P.MSG_STATE]
    assert state and state[0]["changes"]["cells"] == bridge.session.snapshot()["cells"]


def test_newer_request_supersedes_older(bridge: TuneSession) -> None:
    session = bridge.session.tuning
    entered, gate = threading.Event(), threading.Event()
    real = session.engine._solver

    def held(*args: Any, **kw: Any) -> Any:  # request 1 waits inside the solver
        entered.set()
        assert gate.wait(10)
        return real(*args, **kw)

    session.engine._solver = held
    first, second = Reply(), Reply()
    session.apply({"lam": 0.05, "request_id": 1}, deliver=first.put)
    assert entered.wait(10)
    session.apply({"lam": 0.06, "request_id": 2}, deliver=second.put)
    gate.set()
    stale = first.wait(10)
    assert [h["type"] for h, _ in stale] == [P.MSG_SUPERSEDED]
    fresh = second.wait(10)
    assert fresh[-1][0]["type"] == P.MSG_VIEW and fresh[-1][0]["id"] == 2


def test_export_ends_the_session_with_the_parameters(bridge: TuneSession) -> None:
    post_json(bridge, "/api/v1/state", {"changes": {"tau_rise": 0.04, "lam": 0.03}})
    _, _, body = post_json(bridge, "/api/v1/message", {"message": {"type": P.MSG_EXPORT}})
    assert framing.decode(body)[0][0]["type"] == P.MSG_EXPORTED
    params = bridge.wait(1)
    assert params == {
        "tau_rise": 0.04,
        "tau_decay": 0.5,
        "lambda_": 0.03,
        "fs": 30.0,
        "filter_enabled": False,
    }
    assert params == calab.io.export.params_from_export(bridge.session.export)


def test_catune_app_posts_its_export(bridge: TuneSession) -> None:
    export = calab.export_dict(tau_rise=0.03, tau_decay=0.7, lam=0.2, fs=30.0)
    assert post_json(bridge, "/api/v1/params", export)[0] == 200
    assert bridge.wait(1)["lambda_"] == 0.2
    bad = post_json(bridge, "/api/v1/params", {"schema_version": "9.9.9"})
    assert bad[0] == 400


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "status"),
    [
        ("GET", "/api/v1/nothing", None, None, 404),
        ("PUT", "/api/v1/state", b"{}", "application/json", 405),
        ("GET", "/api/v1/state", None, None, 405),
        ("POST", "/api/v1/state", b"{not json", "application/json", 400),
        ("POST", "/api/v1/state", b'{"changes": 1}', "application/json", 400),
        ("POST", "/api/v1/state", b'{"changes": {"tau_rise": "x"}}', "application/json", 400),
        ("POST", "/api/v1/state", b'{"changes": {"n_frames": 3}}', "application/json", 400),
        ("POST", "/api/v1/state", b'{"changes": {"cells": [999]}}', "application/json", 400),
        ("POST", "/api/v1/state", b'{"changes": {}}', "text/plain", 415),
        ("POST", "/api/v1/message", b'{"message": {"type": "x"}}', "application/json", 400),
        ("POST", "/api/v1/message", b'{"message": {"type": "calab:get-spectrum", "cell": -1}}',
         "application/json", 400),
        ("GET", "/static/../bridge/server.py", None, None, 404),
        ("GET", "/static/%2e%2e%2fbridge%2fserver.py", None, None, 404),
        ("GET", "/static/..%2f__init__.py", None, None, 404),
        ("GET", "/static/_protocol.py", None, None, 404),
        ("GET", "/etc/passwd", None, None, 404),
        ("DELETE", "/", None, None, 405),
    ],
)  # fmt: skip
def test_bad_requests_get_4xx(
    bridge: TuneSession, method: str, path: str, body: bytes | None, ctype: str | None, status: int
) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    got, _, data = call(bridge, method, path, body, headers)
    assert got == status, data
    assert b"Traceback" not in data


def test_body_size_is_limited(bridge: TuneSession) -> None:
    # The server answers from the Content-Length alone, before reading the body.
    conn = http.client.HTTPConnection("127.0.0.1", bridge.server.port, timeout=10)
    conn.putrequest("POST", "/api/v1/state")
    conn.putheader("Content-Type", "application/json")
    conn.putheader(P.BRIDGE_SECRET_HEADER, secret_of(bridge))
    conn.putheader("Content-Length", str(MAX_BODY + 10))
    conn.endheaders(b'{"changes": {')
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 413
    assert call(bridge, "GET", "/api/v1/health")[0] == 200


def test_static_bundle_and_page(bridge: TuneSession) -> None:
    status, headers, body = call(bridge, "GET", "/", secret=None)
    assert status == 200 and b"/static/bridge.js" in body
    assert "script-src 'self'" in headers["content-security-policy"]
    status, headers, _ = call(bridge, "GET", "/static/bridge.js", secret=None)
    assert status == 200 and headers["content-type"].startswith("text/javascript")


def test_host_header_must_be_loopback(bridge: TuneSession) -> None:
    status, _, _ = call(bridge, "GET", "/api/v1/health", headers={"Host": "evil.example:80"})
    assert status == 403


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "localhost.evil.example:8000",
        "127.0.0.1.nip.io:8000",
        "127.0.0.2:8000",
        "0.0.0.0:8000",
        "localhost:8000@evil.example",
        "[::1]:8000:1",
        "localhost:123456",
        "",
    ],
)
def test_host_names_other_than_loopback_are_refused(bridge: TuneSession, host: str) -> None:
    """No DNS rebinding: a page on another name never reads the API, secret or not."""
    assert call(bridge, "GET", "/api/v1/health", headers={"Host": host})[0] == 403
    assert call(bridge, "GET", "/", headers={"Host": host}, secret=None)[0] == 403


@pytest.mark.parametrize("host", ["localhost:9000", "127.0.0.1:18080", "[::1]:8765", "localhost"])
def test_an_ssh_tunnel_from_another_local_port_is_served(bridge: TuneSession, host: str) -> None:
    """Issue 18 item 6: ``ssh -L 9000:127.0.0.1:PORT`` sends ``Host: localhost:9000`` (was 403).

    Loopback names on any port are accepted; the secret still guards the API.
    """
    status, _, body = call(bridge, "GET", "/", headers={"Host": host}, secret=None)
    assert status == 200 and b"/static/bridge.js" in body
    assert call(bridge, "GET", "/static/bridge.js", headers={"Host": host}, secret=None)[0] == 200
    assert call(bridge, "GET", "/api/v1/session", headers={"Host": host}, secret=None)[0] == 401
    assert call(bridge, "GET", "/api/v1/session", headers={"Host": host})[0] == 200


def test_cors_only_for_the_configured_front_end(traces: np.ndarray) -> None:
    app = "https://catune.example.org"
    with start(traces, 30.0, lam=0.02, app_url=app + "/tune") as s:
        assert s.url.startswith(app + "/tune?bridge=http%3A%2F%2F127.0.0.1")
        status, headers, _ = call(
            s, "OPTIONS", "/api/v1/traces", headers={"Origin": app}, secret=None
        )
        assert status == 204
        assert headers["access-control-allow-origin"] == app
        assert headers["access-control-allow-private-network"] == "true"
        assert "X-Bridge-Secret" in headers["access-control-allow-headers"]
        _, headers, _ = call(s, "GET", "/api/v1/status", headers={"Origin": app})
        assert headers["access-control-allow-origin"] == app
        _, headers, _ = call(
            s, "OPTIONS", "/api/v1/traces", headers={"Origin": "https://evil.test"}, secret=None
        )
        assert "access-control-allow-origin" not in headers
        _, headers, _ = call(s, "GET", "/api/v1/status", headers={"Origin": "https://evil.test"})
        assert "access-control-allow-origin" not in headers


def test_two_sessions_do_not_interfere(traces: np.ndarray) -> None:
    with start(traces, 30.0, lam=0.02) as a, start(traces[:3], 30.0, lam=0.02) as b:
        assert a.server.port != b.server.port and secret_of(a) != secret_of(b)
        assert call(a, "GET", "/api/v1/health", secret=secret_of(b))[0] == 401
        post_json(a, "/api/v1/state", {"changes": {"tau_decay": 0.9}})
        assert b.session.snapshot()["tau_decay"] == 0.5
        post_json(b, "/api/v1/message", {"message": {"type": P.MSG_EXPORT}})
        assert b.wait(1)["tau_decay"] == 0.5 and not a.session.done.is_set()


def test_close_frees_the_port(traces: np.ndarray) -> None:
    s = start(traces, 30.0, lam=0.02)
    port = s.server.port
    s.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # would raise if still held


def test_tune_times_out_and_stops_the_server(traces: np.ndarray) -> None:
    urls: list[str] = []
    t0 = time.monotonic()
    assert calab.tune(traces, 30.0, lam=0.02, timeout=0.5, on_url=urls.append) is None
    assert time.monotonic() - t0 < 5
    port = int(urls[0].split(":")[2].split("/")[0])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_tune_reports_a_page_that_went_away(
    traces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(P, "BRIDGE_GONE_S", 0.3)
    seen: list[str] = []

    def beat_once(url: str) -> None:
        seen.append(url)
        port = int(url.split(":")[2].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(
            "POST",
            "/api/v1/heartbeat",
            body=b"{}",
            headers={
                "Content-Type": "application/json",
                P.BRIDGE_SECRET_HEADER: url.split("=")[-1],
            },
        )
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 200

    with pytest.warns(RuntimeWarning, match="stopped sending heartbeats"):
        assert calab.tune(traces, 30.0, lam=0.02, timeout=20, on_url=beat_once) is None
    assert seen


def test_tune_returns_what_the_page_exports(traces: np.ndarray, tmp_path: Any) -> None:
    out = tmp_path / "export.json"

    def page(url: str) -> None:
        def run() -> None:
            port = int(url.split(":")[2].split("/")[0])
            secret = url.split("bridge_secret=")[1]
            for body in (
                {"changes": {"tau_rise": 0.06, "filter_enabled": True, "request_id": 1}},
                {"message": {"type": P.MSG_EXPORT}},
            ):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                path = "/api/v1/state" if "changes" in body else "/api/v1/message"
                conn.request(
                    "POST",
                    path,
                    json.dumps(body).encode(),
                    {"Content-Type": "application/json", P.BRIDGE_SECRET_HEADER: secret},
                )
                resp = conn.getresponse()
                resp.read()
                conn.close()
                assert resp.status == 200

        threading.Thread(target=run, daemon=True).start()

    params = calab.tune(traces, 30.0, lam=0.02, timeout=20, on_url=page, output=out)
    assert params == {
        "tau_rise": 0.06,
        "tau_decay": 0.5,
        "lambda_": 0.02,
        "fs": 30.0,
        "filter_enabled": True,
    }
    assert calab.load_export_params(out) == params


def test_tune_validates_before_serving(traces: np.ndarray) -> None:
    with pytest.raises(ValueError, match="tau_rise"):
        calab.tune(traces, 30.0, tau_rise=1.0, tau_decay=0.5, timeout=1, open_browser=False)
    with pytest.raises(ValueError, match="NaN"):
        bad = traces.copy()
        bad[2, 5] = np.nan
        calab.tune(bad, 30.0, timeout=1, open_browser=False)
    with pytest.raises(ValueError, match="app_url"):
        calab.tune(traces, 30.0, app_url="javascript:alert(1)", timeout=1)


def test_fuzz_random_requests_leave_the_server_healthy(bridge: TuneSession) -> None:
    """Bounded fuzz: random methods, paths, headers and bodies; only 2xx/4xx, no leaks."""
    rng = random.Random(1234)
    secret = secret_of(bridge)
    methods = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"]
    paths = [
        "/",
        "/static/",
        "/static/bridge.js",
        "/static/..",
        "/api/v1/state",
        "/api/v1/message",
        "/api/v1/params",
        "/api/v1/heartbeat",
        "/api/v1/traces",
        "/api/v2/x",
        "//api/v1/health",
        "/api/v1/health?x=%00",
    ]
    alphabet = "abc/._-%~:?&=#[]{}\"' \\\x00\xff"
    threads_before = threading.active_count()
    for i in range(300):
        method = rng.choice(methods)
        if rng.random() < 0.5:
            path = rng.choice(paths)
        else:
            path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        headers: dict[str, str] = {}
        if rng.random() < 0.6:
            headers[P.BRIDGE_SECRET_HEADER] = secret if rng.random() < 0.7 else "x" * 43
        if rng.random() < 0.6:
            headers["Content-Type"] = rng.choice(["application/json", "text/plain", "", "x/y"])
        kind = rng.random()
        if kind < 0.3:
            body = json.dumps(
                {"changes": {rng.choice(["lam", "cells", "tau_rise", "zz"]): rng.random()}}
            ).encode()
        elif kind < 0.5:
            body = json.dumps({"message": {"type": rng.choice(["calab:hello", "q", 3])}}).encode()
        elif kind < 0.7:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        else:
            body = None
        try:
            conn = http.client.HTTPConnection("127.0.0.1", bridge.server.port, timeout=10)
            conn.putrequest(method, path.encode("latin-1", "replace").decode("latin-1"),
                            skip_accept_encoding=True)  # fmt: skip
            for k, v in headers.items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except (http.client.HTTPException, ConnectionError, ValueError, UnicodeError):
            continue  # the client library refused to send it, or the server closed on garbage
        assert resp.status < 500, (i, method, path, resp.status, data[:200])
        assert b"Traceback" not in data
        if not path.startswith("/api/v1/traces"):
            assert secret.encode() not in data
    assert call(bridge, "GET", "/api/v1/health")[0] == 200
    time.sleep(0.2)
    assert threading.active_count() <= threads_before + 2


def test_ctrl_c_stops_the_server_and_frees_the_port(traces: np.ndarray) -> None:
    ports: list[int] = []

    def interrupted(url: str) -> None:
        ports.append(int(url.split(":")[2].split("/")[0]))
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C while tune() waits

    with pytest.raises(KeyboardInterrupt):
        calab.tune(traces, 30.0, lam=0.02, on_url=interrupted)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


def test_remote_tune_through_a_tunnel_prints_the_url_on_stderr(
    tmp_path: Path, traces: np.ndarray
) -> None:
    """Issue 18 item 6, as a remote user runs it: ``calab tune --no-browser`` over SSH.

    The URL is on stderr (stdout holds only the final JSON); the page, reached through a
    tunnel from another local port (``Host: localhost:9000``), exports and ends the command.
    """
    from _cli_run import CMD

    np.save(tmp_path / "t.npy", traces)
    proc = subprocess.Popen(
        [*CMD, "tune", "t.npy", "--fs", "30", "--no-browser", "--timeout", "20"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        url = proc.stderr.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "bridge_secret=" in url, url
        parts = urlsplit(url)
        assert parts.port is not None
        secret = parse_qs(parts.query)["bridge_secret"][0]
        conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
        tunnel = {"Host": "localhost:9000", P.BRIDGE_SECRET_HEADER: secret}
        conn.request("GET", "/", headers=tunnel)
        page = conn.getresponse()
        assert page.status == 200 and b"/static/bridge.js" in page.read()
        body = json.dumps({"message": {"type": P.MSG_EXPORT}})
        conn.request(
            "POST", "/api/v1/message", body, {**tunnel, "Content-Type": "application/json"}
        )
        assert conn.getresponse().status == 200
        conn.close()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    params = json.loads(out)  # stdout: the parameters' JSON and nothing else
    assert params["fs"] == 30.0 and params["tau_decay"] > params["tau_rise"] > 0
