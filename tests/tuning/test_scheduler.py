"""Latest-request-wins scheduling: a newer request supersedes a waiting or running one."""

from __future__ import annotations

import threading

from calab.tuning import LatestOnly


def test_latest_only_supersedes_waiting_and_running_requests():
    started = threading.Event()
    release = threading.Event()
    done: list[int] = []

    def handler(req: int, check) -> None:
        if req == 1:
            started.set()
            release.wait(5)
            check()  # request 3 is waiting by now: this raises Superseded
        done.append(req)

    q: LatestOnly[int] = LatestOnly(handler)
    q.submit(1)
    assert started.wait(5)
    q.submit(2)
    q.submit(3)  # supersedes 2 before it ever runs
    assert not q.submit(3)  # identical to the last request: ignored
    release.set()
    assert q.wait_idle(5)
    assert done == [3]
    assert q.superseded == 2 and q.completed == 1
    q.close()


def test_latest_only_survives_handler_errors(caplog):
    seen: list[int] = []

    def handler(req: int, check) -> None:
        if req == 1:
            raise RuntimeError("boom")
        seen.append(req)

    q: LatestOnly[int] = LatestOnly(handler, threaded=False)
    q.submit(1)
    q.submit(2)
    assert seen == [2] and q.failed == 1
    assert "boom" in caplog.text
