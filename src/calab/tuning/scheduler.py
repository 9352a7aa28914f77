"""Latest-request-wins execution: a newer request supersedes an older waiting or running one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Superseded(Exception):
    """Raised inside a job (by ``check()``) when a newer request has arrived."""


class LatestOnly(Generic[T]):
    """Run ``handler(request, check)`` on one worker thread, always for the newest request.

    ``submit`` never blocks: it replaces any request still waiting. A running job calls
    ``check()`` between units of work (e.g. between cells); ``check`` raises :class:`Superseded`
    once a newer request is waiting, so stale work stops early and the newest request runs next.
    Requests equal to the last submitted one are ignored (one user action often fires several
    change notifications).

    Parameters
    ----------
    handler : callable
        ``handler(request, check) -> None``; exceptions other than ``Superseded`` are logged
        and do not stop the worker.
    threaded : bool
        False runs each request synchronously inside ``submit`` (for tests and scripts).
    """

    def __init__(self, handler: Callable[[T, Callable[[], None]], None], *, threaded: bool = True):
        self._handler = handler
        self._threaded = threaded
        self._cond = threading.Condition()
        self._pending: T | None = None
        self._has_pending = False
        self._last: object = object()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.completed = 0
        self.superseded = 0
        self.failed = 0

    def submit(self, request: T) -> bool:
        """Queue ``request``; return False when it equals the last one submitted."""
        with self._cond:
            if self._closed:
                return False
            if request == self._last:
                return False
            self._last = request
            if self._has_pending:
                self.superseded += 1  # the waiting request never ran
            self._pending = request
            self._has_pending = True
            if self._threaded:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="calab-tuning", daemon=True
                    )
                    self._thread.start()
                self._cond.notify_all()
                return True
        self._drain()
        return True

    def resubmit(self, request: T) -> None:
        """Queue ``request`` even when it equals the last one (e.g. after the data changed)."""
        with self._cond:
            self._last = object()
        self.submit(request)

    def _check(self) -> None:
        with self._cond:
            if self._has_pending or self._closed:
                raise Superseded

    def _take(self) -> T | None:
        with self._cond:
            if not self._has_pending:
                return None
            req = self._pending
            self._pending = None
            self._has_pending = False
            self._busy = True
            return req

    def _run(self, req: T) -> None:
        try:
            self._handler(req, self._check)
            self.completed += 1
        except Superseded:
            self.superseded += 1
        except Exception:  # noqa: BLE001 - a failed job must not kill the worker
            self.failed += 1
            logger.exception("calab tuning request failed")
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _drain(self) -> None:
        while (req := self._take()) is not None:
            self._run(req)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._has_pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            self._drain()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no request is waiting or running; return False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy and not self._has_pending, timeout)

    def close(self) -> None:
        """Stop the worker after its current job."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
