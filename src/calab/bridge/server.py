"""The local HTTP server behind ``calab.tune()``.

Security model: the server listens on 127.0.0.1 only and checks the Host header (no DNS
rebinding): a loopback name or address, on any port, so an SSH tunnel from another local port
works (the secret still guards the API). Static files are public code served only from the
package's own bundle, by the names the bundle holds.
Everything under ``/api/`` needs the per-session secret in the ``X-Bridge-Secret`` header,
compared in constant time (401 otherwise). CORS headers are sent only to the origin of the
front end this session opened (``app_url``); our own page is same-origin and needs none.
Bodies are limited in size, must be JSON where JSON is expected, and anything malformed gets a
4xx answer, never a crash or a traceback. Each request must arrive whole (request line, headers
and body) within one deadline, so clients trickling bytes cannot hold the connection slots.

Routes (the CaTune web app's bridge protocol, plus calab's own for its page):

- ``GET /`` the page; ``GET /static/<file>`` the UI bundle
- ``GET /api/v1/health``, ``GET /api/v1/status``, ``GET /api/v1/metadata``,
  ``GET /api/v1/traces`` (``np.save`` bytes), ``POST /api/v1/heartbeat``,
  ``POST /api/v1/params`` (export JSON; ends the session)
- ``GET /api/v1/session`` (state snapshot), ``POST /api/v1/state`` (``{"changes": {...}}``),
  ``POST /api/v1/message`` (``{"message": {...}}``): binary replies, see :mod:`.framing`
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from calab import _protocol as P
from calab.bridge import framing
from calab.bridge.session import BadRequest, BridgeSession

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
MAX_BODY = 1 << 20  # 1 MiB: parameter and state messages are a few hundred bytes
#: Seconds a request may take to arrive whole (request line, headers and body), counted from the
#: connection's opening or the end of the previous answer on it (idle time included).
CONNECTION_TIMEOUT_S = 30.0
#: Bytes of ``GET /api/v1/traces`` encoded at once (1 MiB): the answer is streamed.
TRACE_BLOCK_BYTES = 1 << 20
#: Host headers accepted: loopback, on any port (an SSH tunnel may use another local port).
_LOOPBACK_HOST = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?", re.IGNORECASE)
#: Connections served at once; more are answered 503 and closed (a page uses at most ~6).
MAX_CONNECTIONS = 32
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>calab tune</title>
<link rel="stylesheet" href="/static/bridge.css">
</head>
<body>
<main id="calab-app"><p id="calab-loading">Loading the calab tuner...</p></main>
<script type="module" src="/static/bridge.js"></script>
</body>
</html>
"""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class BridgeServer(ThreadingHTTPServer):
    """HTTP server of one session, bound to 127.0.0.1."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(
        self,
        session: BridgeSession,
        secret: str,
        *,
        port: int = 0,
        allowed_origin: str | None = None,
        timeout: float = CONNECTION_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.secret = secret.encode()
        self.allowed_origin = allowed_origin
        self.connection_timeout = float(timeout)
        self.clock = clock
        self.max_connections = int(max_connections)
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._accepted: dict[Any, float] = {}  # connection -> when it was accepted
        self._open_lock = threading.Condition()
        self.open_connections = 0
        self.refused_connections = 0
        super().__init__(("127.0.0.1", port), BridgeHandler)
        self.port = int(self.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve requests on a daemon thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection on its own thread, or refuse it when all slots are taken."""
        if not self._slots.acquire(blocking=False):
            self.refused_connections += 1
            logger.warning(
                "calab bridge: refused a connection: %d connections are open already",
                self.max_connections,
            )
            try:
                request.settimeout(1.0)
                body = b'{"error": "too many connections"}'
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        self._accepted[request] = self.clock()  # the first request's deadline counts from here
        with self._open_lock:
            self.open_connections += 1
            self._open_lock.notify_all()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._accepted.pop(request, None)
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one connection, then release its slot in the connection count."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._open_lock:
            self.open_connections -= 1
            self._open_lock.notify_all()
        self._slots.release()

    def wait_open_connections(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until exactly ``n`` connections are being served; False on timeout."""
        with self._open_lock:
            return self._open_lock.wait_for(lambda: self.open_connections == n, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line for a client that went away; the traceback only for real faults."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            logger.info("calab bridge: client %s went away: %s", client_address[0], exc)
        else:
            logger.error("calab bridge: connection failed", exc_info=exc)

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class RequestTimeout(Exception):
    """A request did not arrive whole (line, headers, body) within the server's deadline."""


class _DeadlineReader(io.RawIOBase):
    """A connection's socket as a stream that waits no longer than the request's deadline.

    The socket's own timeout bounds one wait for bytes, so a client sending a header line every
    few seconds would never time out; this bounds the whole request (see :meth:`start`).
    """

    def __init__(
        self, sock: socket.socket, seconds: float, clock: Callable[[], float], since: float
    ) -> None:
        super().__init__()
        self._sock = sock
        self._seconds = seconds
        self._clock = clock
        self._deadline = since + seconds

    def start(self) -> None:
        """Give the next request ``seconds`` from now to arrive whole."""
        self._deadline = self._clock() + self._seconds

    def _late(self) -> RequestTimeout:
        return RequestTimeout(f"the request did not arrive whole within {self._seconds:g} s")

    def readable(self) -> bool:
        """Tell io that this stream reads."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Receive into ``buffer``; raise RequestTimeout once the deadline has passed."""
        left = self._deadline - self._clock()
        if left <= 0:
            raise self._late()
        self._sock.settimeout(min(left, self._seconds))
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            if self._clock() >= self._deadline:
                raise self._late() from None
            raise
        finally:
            self._sock.settimeout(self._seconds)  # answers are written with the idle timeout


class _HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BridgeHandler(BaseHTTPRequestHandler):
    """HTTP handler for the bridge: routes requests to the server's session."""

    server: BridgeServer
    protocol_version = "HTTP/1.1"
    server_version = "calab-bridge"
    sys_version = ""

    # ---- plumbing --------------------------------------------------------------------------
    def setup(self) -> None:
        """Set up the connection: requests are read against a deadline (see _DeadlineReader)."""
        super().setup()
        server = self.server
        seconds = server.connection_timeout
        self.connection.settimeout(seconds)
        since = server._accepted.pop(self.connection, None)
        since = server.clock() if since is None else since
        self._reader = _DeadlineReader(self.connection, seconds, server.clock, since)
        self.rfile.close()
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """Read and answer one request; close the connection when it does not arrive in time.

        The first request's deadline counts from the connection's acceptance, each next one's
        from the end of the previous answer.
        """
        try:
            super().handle_one_request()
            self._reader.start()
        except RequestTimeout as exc:
            self.close_connection = True
            logger.info(
                "calab bridge: closed a slow connection from %s: %s", self.client_address[0], exc
            )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Log a request line at debug level instead of printing to stderr."""
        logger.debug("%s - %s", self.address_string(), format % args)

    def _origin_headers(self) -> None:
        origin = self.headers.get("Origin")
        allowed = self.server.allowed_origin
        if origin and allowed and hmac.compare_digest(origin.encode(), allowed.encode()):
            self.send_header("Access-Control-Allow-Origin", allowed)
            self.send_header("Vary", "Origin")

    def _send(
        self,
        status: HTTPStatus,
        body: bytes = b"",
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        self._head(status, len(body), content_type, extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _head(
        self,
        status: HTTPStatus,
        length: int,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self._origin_headers()
        self.end_headers()

    def _json(self, status: HTTPStatus, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True
        self._json(status, {"error": message})

    def _check_host(self) -> None:
        if not _LOOPBACK_HOST.fullmatch(self.headers.get("Host", "")):
            raise _HTTPError(HTTPStatus.FORBIDDEN, "unexpected Host header")

    def _check_secret(self) -> None:
        given = self.headers.get(P.BRIDGE_SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.server.secret):
            raise _HTTPError(HTTPStatus.UNAUTHORIZED, "missing or wrong bridge secret")

    def _body_json(self) -> Any:
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise _HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None:
            raise _HTTPError(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        try:
            n = int(length)
        except ValueError:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if n < 0:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        if n > MAX_BODY:
            raise _HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        raw = self.rfile.read(n)
        if len(raw) < n:
            raise ConnectionResetError(f"the client sent {len(raw)} of {n} body bytes and left")
        try:
            return json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "malformed JSON") from None
        except RecursionError:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "JSON nested too deeply") from None

    def _dispatch(self, method: str) -> None:
        try:
            self._check_host()
            path = urlsplit(self.path).path
            if method == "OPTIONS":
                self._preflight()
            elif path.startswith("/api/"):
                self._check_secret()
                self._api(method, path)
            elif method in ("GET", "HEAD"):
                self._static(path)
            else:
                raise _HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
        except _HTTPError as exc:
            self._error(exc.status, exc.message)
        except BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except RequestTimeout as exc:
            logger.info("calab bridge: %s %s: %s", method, self.path, exc)
            try:
                self._error(HTTPStatus.REQUEST_TIMEOUT, str(exc))
            except (ConnectionError, TimeoutError):
                self.close_connection = True
        except (ConnectionError, TimeoutError) as exc:
            self.close_connection = True
            logger.info("calab bridge: client went away during %s %s: %s", method, self.path, exc)
        except Exception:  # noqa: BLE001 - never a traceback to the client
            logger.exception("calab bridge: request %s %s failed", method, self.path)
            try:
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the Python log)")
            except (ConnectionError, TimeoutError):
                self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        """Dispatch a GET request."""
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        """Dispatch a HEAD request."""
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        """Dispatch a POST request."""
        self._dispatch("POST")

    def do_OPTIONS(self) -> None:  # noqa: N802
        """Dispatch an OPTIONS request."""
        self._dispatch("OPTIONS")

    def do_PUT(self) -> None:  # noqa: N802
        """Dispatch a PUT request."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        """Dispatch a DELETE request."""
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        """Dispatch a PATCH request."""
        self._dispatch("PATCH")

    # ---- routes ------------------------------------------------------------------------------
    def _preflight(self) -> None:
        origin = self.headers.get("Origin")
        allowed = self.server.allowed_origin
        extra = {"Access-Control-Max-Age": "600"}
        if origin and allowed and origin == allowed:
            extra.update(
                {
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": f"{P.BRIDGE_SECRET_HEADER}, Content-Type",
                    "Access-Control-Allow-Private-Network": "true",
                }
            )
        self._send(HTTPStatus.NO_CONTENT, b"", "text/plain", extra)

    def _static(self, path: str) -> None:
        if path in ("/", "/index.html"):
            self._send(
                HTTPStatus.OK,
                PAGE.encode(),
                "text/html; charset=utf-8",
                {"Content-Security-Policy": CSP},
            )
            return
        name = path[len("/static/") :] if path.startswith("/static/") else ""
        # Only the names the bundle holds: the request's text never becomes a path to look up.
        file = _bundle_files().get(name)
        try:
            body = file.read_bytes() if file is not None else None
        except OSError:
            body = None
        if file is None or body is None:
            raise _HTTPError(HTTPStatus.NOT_FOUND, "not found")
        self._send(HTTPStatus.OK, body, _STATIC_TYPES[file.suffix])

    def _api(self, method: str, path: str) -> None:
        session = self.server.session
        route = (method if method != "HEAD" else "GET", path)
        if route == ("GET", "/api/v1/health"):
            self._json(HTTPStatus.OK, {"ok": True})
        elif route == ("GET", "/api/v1/status"):
            self._json(HTTPStatus.OK, {"ready": True, "app": "catune"})
        elif route == ("GET", "/api/v1/metadata"):
            e = session.engine
            self._json(
                HTTPStatus.OK,
                {"sampling_rate_hz": e.fs, "num_cells": e.n_cells, "num_timepoints": e.n_frames},
            )
        elif route == ("GET", "/api/v1/traces"):
            self._traces(session.engine.traces)
        elif route == ("GET", "/api/v1/session"):
            self._json(HTTPStatus.OK, session.snapshot())
        elif route == ("POST", "/api/v1/heartbeat"):
            self._body_json()
            session.heartbeat()
            self._json(HTTPStatus.OK, {"ok": True})
        elif route == ("POST", "/api/v1/params"):
            body = self._body_json()
            if not isinstance(body, dict):
                raise BadRequest("expected the CaTune export JSON object")
            session.finish(body)
            self._json(HTTPStatus.OK, {"ok": True})
        elif route == ("POST", "/api/v1/state"):
            body = self._body_json()
            if not isinstance(body, dict) or "changes" not in body:
                raise BadRequest('expected {"changes": {...}}')
            self._frames(session.change(body["changes"]))
        elif route == ("POST", "/api/v1/message"):
            body = self._body_json()
            if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
                raise BadRequest('expected {"message": {...}}')
            self._frames(session.message(body["message"]))
        elif path in _API_PATHS:
            raise _HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
        else:
            raise _HTTPError(HTTPStatus.NOT_FOUND, "unknown API route")

    def _frames(self, messages: Sequence[framing.Message]) -> None:
        self._send(HTTPStatus.OK, framing.encode(messages), "application/octet-stream")

    def _traces(self, traces: np.ndarray) -> None:
        """Answer the traces as ``np.save`` bytes of float64, streamed a block at a time.

        The recording is never encoded whole (each reader costs one block, none if the traces
        are float64 already), so readers at once do not multiply the recording in memory.
        """
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": traces.shape}
        )
        head = header.getvalue()
        self._head(HTTPStatus.OK, len(head) + 8 * traces.size, "application/octet-stream")
        if self.command == "HEAD":
            return
        self.wfile.write(head)
        for block in _float64_blocks(traces):
            self.wfile.write(block)


def _bundle_files() -> dict[str, Path]:
    """Return the UI bundle's files by name (types served only), listed afresh each time."""
    try:
        return {
            p.name: p
            for p in STATIC_DIR.iterdir()
            if p.suffix in _STATIC_TYPES and not p.name.startswith(".") and p.is_file()
        }
    except OSError:
        return {}


def _float64_blocks(a: np.ndarray) -> Iterator[memoryview]:
    """Yield the bytes of 2-D ``a`` as little-endian float64 in C order, about 1 MiB at a time.

    No copy where ``a`` is C-ordered ``<f8`` already; otherwise one block is converted at once.
    """
    n_rows, n_cols = a.shape
    cols = max(1, TRACE_BLOCK_BYTES // 8)
    rows = max(1, TRACE_BLOCK_BYTES // (8 * max(n_cols, 1)))
    for i in range(0, n_rows, rows):
        for j in range(0, n_cols, cols):
            block = np.ascontiguousarray(a[i : i + rows, j : j + cols], dtype="<f8")
            yield block.data.cast("B")


_API_PATHS = {
    "/api/v1/health",
    "/api/v1/status",
    "/api/v1/metadata",
    "/api/v1/traces",
    "/api/v1/session",
    "/api/v1/heartbeat",
    "/api/v1/params",
    "/api/v1/state",
    "/api/v1/message",
}
