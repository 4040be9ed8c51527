"""Every call into the tracking store retries while the store is busy or unreachable."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import TypeVar

from classvis.track.interrupt import store_call

log = logging.getLogger("classvis.track")
T = TypeVar("T")


def is_transient(error: Exception) -> bool:
    text = str(error).lower()
    return any(s in text for s in ("database is locked", "database table is locked",
                                   "unable to open database", "connection refused",
                                   "connection aborted", "connection reset", "remotedisconnected",
                                   "max retries exceeded", "temporarily unavailable", "busy",
                                   "bad gateway", "service unavailable", "gateway timeout"))


FAILING_RETRY_S = 10.0  # how long a failing run tries to record why, before giving up


class _Budget:
    """How long a call waits for a busy or unreachable store (``tracking.retry_for_s``, set by
    ``connect``): a tracking server restarting mid-sweep is waited for, then the job fails."""

    seconds = 120.0


def set_budget(seconds: float) -> None:
    _Budget.seconds = seconds


def budget() -> float:
    return _Budget.seconds


def retrying(call: Callable[[], T], also: Callable[[Exception], bool] | None = None,
             retry_for_s: float | None = None) -> T:
    """Run ``call``, retrying with jittered backoff while the store is busy or unreachable (or
    while ``also`` says an error is worth another try), for at most ``retry_for_s`` seconds
    (default ``tracking.retry_for_s``), saying so while it waits; then the last error is raised."""
    budget = _Budget.seconds if retry_for_s is None else retry_for_s
    deadline = time.monotonic() + budget
    attempt, said = 0, -math.inf
    while True:
        try:
            with store_call():
                return call()
        except Exception as error:
            again = is_transient(error) or (also is not None and also(error))
            left = deadline - time.monotonic()
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            if not again:
                raise
            if left <= 0:
                log.error("tracking store still busy or unreachable after %.0f s; giving up: %s",
                          budget, reason)
                raise
            if time.monotonic() - said >= 10.0:  # one line now and then, not one per try
                log.warning("tracking store busy or unreachable (%s); retrying for up to %.0f s",
                            reason, left)
                said = time.monotonic()
            time.sleep(min(left, min(4.0, 0.1 * 2 ** attempt) * (0.5 + random.random())))
            attempt += 1
