"""Resume and dedup: a config that already FINISHED is skipped (its metrics returned), one left
RUNNING by a dead process is marked KILLED, one alive elsewhere is not run twice.

Two processes that start one config at the same moment both pass those checks; so each run,
once created, claims its config (``claim``): right after it is created, and again before it
ends FINISHED, every live or finished run of the config is read back, and a run that is not
the first of them (FINISHED ones first, then by start time and run id) withdraws, and its run
is deleted. The first read settles runs created seconds apart; the second, after the run's
work, settles one whose creation was slow to reach the store (a busy SQLite file, a server
under load) while it carried an earlier start time."""

from __future__ import annotations

import math
from typing import Any

from classvis import runkeys as keys
from classvis.job import Job, write_status
from classvis.runsettings import RunSettings
from classvis.track.runs import Withdrawn, config_claimants, finished_run_with_tag, reap_dead_runs


class Yielded(Withdrawn):
    """This run's config is held by another run (``winner``), FINISHED or RUNNING."""

    def __init__(self, winner: Any):
        self.winner = winner
        state = "FINISHED" if winner.info.status == "FINISHED" else "RUNNING"
        where = (f" on {winner.data.tags.get(keys.HOST, '?')} (pid "
                 f"{winner.data.tags.get(keys.PID, '?')})" if state == "RUNNING" else "")
        super().__init__(f"an identical config is {state} as MLflow run {winner.info.run_id}"
                         f"{where}, started first")
        self.running = state == "RUNNING"


def skip_if_finished(experiment_id: str, digest: str, settings: RunSettings,
                      job: Job) -> dict[str, float] | None:
    """Resume: the metrics of an identical run that already FINISHED, if any."""
    if settings.force:
        return None
    done = (finished_run_with_tag(experiment_id, keys.CONFIG_DIGEST, digest)
            or finished_run_with_tag(experiment_id, keys.LEGACY[keys.CONFIG_DIGEST], digest))
    if done is None:
        return None
    accuracy = done.data.metrics.get(keys.accuracy("student"), math.nan)
    print(f"classvis: skipped {job.run_name(settings)}: an identical config already FINISHED as "
          f"MLflow run {done.info.run_id} (force=true runs it again)", flush=True)
    write_status(job, "SKIPPED", run_id=done.info.run_id, student_accuracy=accuracy)
    return dict(done.data.metrics)


def reap_or_skip_running(experiment_id: str, digest: str, settings: RunSettings,
                          job: Job) -> dict[str, float] | None:
    """Identical runs left RUNNING by a process that died are marked KILLED with the reason; an
    identical run that is alive elsewhere is not duplicated (no metrics: this job did nothing)."""
    killed, alive = reap_dead_runs(experiment_id, digest, settings.tracking.stale_after_s)
    for run_id, reason in killed:
        print(f"classvis: marked MLflow run {run_id} KILLED: {reason}", flush=True)
    if alive is None or settings.force:
        return None
    where = f"{alive.data.tags.get(keys.HOST, '?')} (pid {alive.data.tags.get(keys.PID, '?')})"
    print(f"classvis: skipped {job.run_name(settings)}: an identical config is RUNNING as MLflow "
          f"run {alive.info.run_id} on {where} (force=true runs it again)", flush=True)
    write_status(job, "SKIPPED", run_id=alive.info.run_id, running=True)
    return {}


def claim(experiment_id: str, digest: str, run_id: str, settings: RunSettings) -> None:
    """Raise ``Yielded`` when a run other than ``run_id`` holds config ``digest`` (FINISHED, or
    RUNNING and started first); ``force=true`` claims nothing."""
    if settings.force:
        return
    holders = config_claimants(experiment_id, digest, settings.tracking.stale_after_s)
    if holders and holders[0].info.run_id != run_id:
        raise Yielded(holders[0])


def yielded(error: Yielded, settings: RunSettings, job: Job) -> dict[str, float]:
    """What a job that withdrew its run prints and leaves (a SKIPPED status naming the winner)."""
    print(f"classvis: skipped {job.run_name(settings)}: {error} (its own run was withdrawn; "
          f"force=true runs it again)", flush=True)
    winner = error.winner
    accuracy = winner.data.metrics.get(keys.accuracy("student"), math.nan)
    write_status(job, "SKIPPED", run_id=winner.info.run_id, running=error.running,
                 **({} if error.running else {"student_accuracy": accuracy}))
    return {} if error.running else dict(winner.data.metrics)
