"""A sweep worker's lifecycle: a joblib worker whose sweep process died ends its running job's run
KILLED and stops, instead of going on with queued jobs nobody waits for."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from classvis import runkeys as keys
from classvis.sweep import SWEEP_HOST, SWEEP_PID, SWEEP_STARTED
from classvis.track.retry import retrying

ORPHAN_GRACE_S = 15.0  # after its sweep died, how long a worker's run has to end KILLED
_watching_the_sweep = False
sweep_gone = threading.Event()
_running: list[Any] = []  # the TrackedRun of the job this process is running, if any


def stop_with_the_sweep() -> None:
    """In a worker process of a sweep (joblib's), stop when the sweep's process dies: a worker
    left behind would go on with queued jobs nobody waits for. The running job's run ends KILLED
    (SIGTERM), then the worker exits."""
    global _watching_the_sweep
    sweep = os.environ.get(SWEEP_PID)
    if _watching_the_sweep or sweep is None or int(sweep) == os.getpid():
        return
    if os.getppid() != int(sweep):
        if _sweep_died(int(sweep)):  # killed while this worker was starting: stop before any run
            print(f"classvis: the sweep's process (pid {sweep}) is gone; this worker "
                  f"(pid {os.getpid()}) stops before its job", file=sys.stderr, flush=True)
            sweep_gone.set()
        return  # else not the sweep's child (a Slurm job on another node)
    _watching_the_sweep = True

    def watch() -> None:
        while os.getppid() == int(sweep):
            time.sleep(1.0)
        print(f"classvis: the sweep's process (pid {sweep}) is gone; this worker "
              f"(pid {os.getpid()}) stops", file=sys.stderr, flush=True)
        sweep_gone.set()
        for run in list(_running):  # marked from here: the worker may not outlive its SIGTERM
            with contextlib.suppress(Exception):
                run.set_tags({keys.ERROR: f"Killed: its sweep's process (pid {sweep}) died",
                              keys.STATUS_REASON: "killed"}, retry_for_s=5.0)
                retrying(functools.partial(run.client.set_terminated, run.run_id, "KILLED"),
                         retry_for_s=5.0)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE_S)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="classvis-sweep-watch", daemon=True).start()


def orphaned() -> bool:
    """Whether this worker's sweep process is gone: its watcher said so, or this process has
    been re-parented already (a SIGTERM from the sweep's watchdog can arrive before the watcher's
    next look, and the job it stops must not be followed by a queued one)."""
    sweep = os.environ.get(SWEEP_PID)
    return sweep_gone.is_set() or (_watching_the_sweep and sweep is not None
                                   and os.getppid() != int(sweep))


def _sweep_died(pid: int) -> bool:
    """Whether the sweep process ``pid`` that started this one on this host has ended (its PID
    gone, or taken by a process that started later)."""
    import psutil

    if os.environ.get(SWEEP_HOST) != socket.gethostname():
        return False
    try:
        started = float(os.environ.get(SWEEP_STARTED, "nan"))
        process = psutil.Process(pid)
        return (abs(process.create_time() - started) >= 1.0
                or process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
    except (psutil.AccessDenied, ValueError):
        return False


@contextlib.contextmanager
def while_running(run: Any) -> Iterator[None]:
    _running.append(run)
    try:
        yield
    finally:
        _running.remove(run)
