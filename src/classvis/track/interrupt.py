"""SIGTERM during a run: ``Terminated`` raised in the main thread, held back while a store call
is in flight so that no SQLAlchemy commit is cut in half."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

INTERRUPTED = "interrupted (Ctrl-C, SIGINT): run stopped"  # KeyboardInterrupt carries no words


class Terminated(BaseException):
    """The process received SIGTERM (a scheduler's time limit, ``kill``) during a run."""


_in_store_call = 0  # how deep the main thread is in store calls (``store_call``)
_stop_pending: list[Terminated] = []  # a SIGTERM that came during one, raised at its end


@contextlib.contextmanager
def store_call() -> Iterator[None]:
    """A call into the tracking store that SIGTERM must not cut in half: ``Terminated`` raised
    inside a SQLAlchemy commit leaves that connection holding the database's write lock, and
    the run's own KILLED marking then waits on it for SQLite's busy timeout (20 s). A SIGTERM
    that arrives inside is raised when the call returns."""
    global _in_store_call
    if threading.current_thread() is not threading.main_thread():  # signals go to main only
        yield
        return
    _in_store_call += 1
    try:
        yield
    finally:
        _in_store_call -= 1
        if _in_store_call == 0 and _stop_pending:
            raise _stop_pending.pop()


@contextlib.contextmanager
def sigterm_stops_the_run() -> Iterator[None]:
    """Inside the body SIGTERM raises ``Terminated`` (in the main thread, where Python delivers
    signals), so the run ends KILLED with the reason instead of staying RUNNING forever."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        stopped = Terminated("SIGTERM received (a scheduler's time limit or kill): run stopped")
        if _in_store_call:  # raised when the store call returns (``store_call``)
            _stop_pending[:] = [stopped]
            return
        raise stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_pending.clear()
