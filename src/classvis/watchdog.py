"""The sweep's watchdog: a small process that outlives a sweep killed at any phase and stops the
processes it left behind.

A sweep killed while its joblib workers are still starting (before any of classvis's code runs
in them) leaves them blocked for ever on pipes that loky's resource trackers, also orphaned, hold
open: no watcher inside a worker can help there. So the sweep starts this process
(``start``); it waits for the sweep's process to end, then sends SIGTERM to every process of this
user that inherited the sweep's identity (``CLASSVIS_SWEEP_PID`` and its start time in the
environment), and SIGKILL to those still alive ``grace_s`` later. A job's run ends KILLED on the
SIGTERM (``track.interrupt``). When the sweep did not end its parent run (killed, it could not),
the watchdog marks the parent KILLED, and the children whose process is gone too. Until then it
needs only the standard library and psutil, so it starts in a blink.

    python -m classvis.watchdog <sweep pid> <its start time> <sweep record file> [grace_s]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PID_VARIABLE = "CLASSVIS_SWEEP_PID"
STARTED_VARIABLE = "CLASSVIS_SWEEP_STARTED"
GRACE_S = 20.0  # how long a left-behind job has to end its run KILLED before SIGKILL
POLL_S = 0.5


ENDED = "ended"  # set in the sweep record once the sweep has ended its parent run


def start(sweep_pid: int, started: str, record: Path) -> None:
    """Start the watchdog of the sweep ``sweep_pid`` (this process), in a session of its own so a
    signal to the sweep's process group does not reach it; ``record``: the sweep's record file
    (``sweep.SWEEP_FILE``), written once the parent run exists."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in (PID_VARIABLE, STARTED_VARIABLE)}
    subprocess.Popen([sys.executable, "-m", "classvis.watchdog", str(sweep_pid), started,
                      str(record)],
                     env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def _same_process(pid: int, started: float) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        return (abs(process.create_time() - started) < 1.0
                and process.status() != psutil.STATUS_ZOMBIE)  # ended, not yet waited for
    except psutil.Error:
        return False


def left_behind(sweep_pid: int, started: str) -> list:
    """This user's processes that carry the sweep's identity in their environment."""
    import psutil

    found = []
    for process in psutil.process_iter():
        if process.pid in (os.getpid(), sweep_pid):
            continue
        try:
            environment = process.environ()
        except psutil.Error:
            continue
        if (environment.get(PID_VARIABLE) == str(sweep_pid)
                and environment.get(STARTED_VARIABLE) == started):
            found.append(process)
    return found


def watch(sweep_pid: int, started: str, record: Path, grace_s: float = GRACE_S) -> int:
    """Wait for the sweep to end, then stop what it left; how many processes were stopped."""
    import psutil

    while _same_process(sweep_pid, float(started)):
        time.sleep(POLL_S)
    stragglers = left_behind(sweep_pid, started)
    for process in stragglers:
        try:
            process.send_signal(signal.SIGTERM)
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(stragglers, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue
    close_records(record, sweep_pid)
    return len(stragglers)


def close_records(record: Path, sweep_pid: int) -> None:
    """Mark the parent run of a sweep that died before ending it KILLED, with the reason, and its
    children whose process is gone."""
    try:
        sweep = json.loads(record.read_text())
    except (OSError, ValueError):
        return  # no parent run was opened
    if sweep.get(ENDED) or sweep.get("classvis.pid") != str(sweep_pid):
        return
    from classvis import runkeys as keys
    from classvis.track.liveness import reap
    from classvis.track.retry import FAILING_RETRY_S, retrying, set_budget
    from classvis.track.store import Store

    set_budget(FAILING_RETRY_S)  # a store that is gone too is left to the next sweep

    client, parent = Store(sweep["tracking_uri"]).client, sweep["parent_run_id"]
    reason = f"Killed: its sweep's process {sweep_pid} ended before it could end this run"
    try:
        reap(client, sweep["experiment_id"], parent, float("inf"), tag=keys.PARENT_RUN)
        if retrying(lambda: client.get_run(parent)).info.status == "RUNNING":
            retrying(lambda: client.set_tag(parent, keys.ERROR, reason))
            retrying(lambda: client.set_tag(parent, keys.STATUS_REASON, "killed"))
            retrying(lambda: client.set_terminated(parent, status="KILLED"))
    except Exception:  # a store gone too: the next sweep marks them (``liveness``)
        return


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]),
          float(sys.argv[4]) if len(sys.argv) > 4 else GRACE_S)
