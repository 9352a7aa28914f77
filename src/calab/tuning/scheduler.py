"""Latest-request-wins execution: a newer request supersedes an older waiting or running one."""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

#: Schedulers with a live worker thread: stopped and joined before the interpreter finalizes.
_LIVE: weakref.WeakSet[LatestOnly[object]] = weakref.WeakSet()


@atexit.register
def _stop_workers() -> None:
    """Stop every worker and wait for it to leave the solver.

    A daemon thread still inside the Rust solver (GIL released) when the interpreter finalizes
    aborts the process ("FATAL: exception not rethrown"); atexit runs before finalization.
    """
    for scheduler in list(_LIVE):
        scheduler.close(join=True)


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
    on_drop : callable, optional
        ``on_drop(request)`` for each request that was replaced before it ran, stopped by
        ``check()``, or left waiting at ``close()`` (e.g. to answer "superseded").
    """

    def __init__(
        self,
        handler: Callable[[T, Callable[[], None]], None],
        *,
        threaded: bool = True,
        on_drop: Callable[[T], None] | None = None,
    ):
        self._handler = handler
        self._on_drop = on_drop
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
        dropped: list[T] = []
        with self._cond:
            if self._closed or request == self._last:
                return False
            self._last = request
            if self._has_pending:
                self.superseded += 1  # the waiting request never ran
                dropped.append(self._pending)  # type: ignore[arg-type]
            self._pending = request
            self._has_pending = True
            if self._threaded:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="calab-tuning", daemon=True
                    )
                    _LIVE.add(self)  # type: ignore[arg-type]
                    self._thread.start()
                self._cond.notify_all()
        self._drop(dropped)
        if not self._threaded:
            self._drain()
        return True

    def _drop(self, requests: list[T]) -> None:
        if self._on_drop is None:
            return
        for req in requests:
            try:
                self._on_drop(req)
            except Exception:  # noqa: BLE001 - a failing callback must not stop the caller
                logger.exception("calab tuning: on_drop failed")

    def resubmit(self, request: T) -> bool:
        """Queue ``request`` even when it equals the last one (e.g. after the page reloaded)."""
        with self._cond:
            self._last = object()
        return self.submit(request)

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
            self._drop([req])
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

    def close(self, *, join: bool = False, timeout: float = 60.0) -> None:
        """Stop the worker after its current job (which stops at its next ``check()``).

        A request still waiting is dropped. ``join=True`` also waits for the worker thread to
        end (at most ``timeout`` seconds), e.g. before the interpreter exits.
        """
        dropped: list[T] = []
        with self._cond:
            self._closed = True
            if self._has_pending:
                dropped.append(self._pending)  # type: ignore[arg-type]
                self._pending = None
                self._has_pending = False
            self._cond.notify_all()
            thread = self._thread
        self._drop(dropped)
        if join and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("calab tuning: the solver thread did not stop within %s s", timeout)
