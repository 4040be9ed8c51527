"""Runs whose process died: a job killed with SIGKILL (out of memory, pre-emption) leaves its run
RUNNING forever. Every run records its host, process and a heartbeat; before a job starts, a
RUNNING run of the same config whose process is gone (same host: the process no longer exists;
another host: no heartbeat for ``tracking.stale_after_s``) is marked KILLED with the reason, and
one that is alive is reported so the job is not run twice."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from classvis import runkeys as keys
from classvis.track.retry import retrying

HEARTBEAT_EVERY = 30.0  # seconds between heartbeats (at most a quarter of stale_after_s)


def identity() -> dict[str, str]:
    """Tags naming this process: host, PID, the process's start time, a first heartbeat."""
    import psutil

    return {keys.HOST: socket.gethostname(), keys.PID: str(os.getpid()),
            keys.PID_STARTED: f"{psutil.Process().create_time():.3f}",
            keys.HEARTBEAT: f"{time.time():.0f}"}


@contextlib.contextmanager
def heartbeat(client: Any, run_id: str, every: float = HEARTBEAT_EVERY) -> Iterator[None]:
    """Refresh the run's heartbeat tag every ``every`` seconds while the body runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):  # a missed beat is not a failed run
                client.set_tag(run_id, keys.HEARTBEAT, f"{time.time():.0f}")

    thread = threading.Thread(target=beat, name="classvis-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def forget_process(client: Any, run_id: str) -> None:
    """Remove the process's tags from an ended run: they only tell whether a RUNNING run is
    alive, and would otherwise differ between every two runs in the UI's compare view."""
    with contextlib.suppress(Exception):  # best effort: an ended run is never reaped
        for key in keys.LIVENESS:
            client.delete_tag(run_id, key)


def process_alive(tags: dict[str, str]) -> bool:
    """Whether the process that ``identity`` named in ``tags`` (on this host) still runs."""
    import psutil

    try:
        process = psutil.Process(int(tags[keys.PID]))
        return (abs(process.create_time() - float(tags[keys.PID_STARTED])) < 1.0
                and process.status() != psutil.STATUS_ZOMBIE)  # ended, not yet waited for
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, KeyError, ValueError):
        return True  # it exists, or we cannot tell: never kill a run we are unsure of


def _death(tags: dict[str, str], start_time_ms: int, stale_after: float) -> str | None:
    """Why a RUNNING run's process is gone (same host: no such process; another host: no
    heartbeat for ``stale_after`` seconds), or None while it lives."""
    here = socket.gethostname()
    if tags.get(keys.HOST) == here and keys.PID in tags:
        if process_alive(tags):
            return None
        return f"its process {tags[keys.PID]} on {here} is gone (killed)"
    last = float(tags.get(keys.HEARTBEAT, start_time_ms / 1000))
    if time.time() - last <= stale_after:
        return None
    return (f"no heartbeat from {tags.get(keys.HOST, 'its host')} for "
            f"{time.time() - last:.0f} s (tracking.stale_after_s={stale_after:g})")


def reap(client: Any, experiment_id: str, digest: str, stale_after: float,
         tag: str = keys.CONFIG_DIGEST) -> tuple[list[tuple[str, str]], Any]:
    """Mark the experiment's dead RUNNING runs whose ``tag`` is ``digest`` (by default: of that
    config) KILLED with the reason. Returns ``[(run id, reason)]`` for those, and a live one if
    there is one (else None)."""
    runs = retrying(functools.partial(
        client.search_runs, [experiment_id],
        filter_string=f"tags.`{tag}` = '{digest}' and attributes.status = 'RUNNING'"))
    killed, alive = [], None
    for run in runs:
        reason = _death(run.data.tags, run.info.start_time, stale_after)
        if reason is None:
            alive = run
            continue
        run_id = run.info.run_id
        retrying(functools.partial(client.set_tag, run_id, keys.ERROR, f"Killed: {reason}"))
        retrying(functools.partial(client.set_tag, run_id, keys.STATUS_REASON, "killed"))
        retrying(functools.partial(client.set_terminated, run_id, status="KILLED"))
        killed.append((run_id, reason))
    return killed, alive


def claimants(client: Any, experiment_id: str, digest: str, stale_after: float) -> list[Any]:
    """The runs that hold config ``digest``: those FINISHED, then those RUNNING whose process
    lives, each group earliest first (by start time, then run id: an order every process that
    reads the store agrees on)."""
    runs = retrying(functools.partial(
        client.search_runs, [experiment_id],
        filter_string=f"tags.`{keys.CONFIG_DIGEST}` = '{digest}'", max_results=1000))
    finished = [run for run in runs if run.info.status == "FINISHED"]
    running = [run for run in runs if run.info.status == "RUNNING"
               and _death(run.data.tags, run.info.start_time, stale_after) is None]

    def order(run: Any) -> tuple[int, str]:
        return int(run.info.start_time or 0), str(run.info.run_id)

    return sorted(finished, key=order) + sorted(running, key=order)
