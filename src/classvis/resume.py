"""Resume and dedup: a config that already FINISHED is skipped (its metrics returned), one left
RUNNING by a dead process is marked KILLED, one alive elsewhere is not run twice."""

from __future__ import annotations

import math

from classvis import runkeys as keys
from classvis.job import Job, write_status
from classvis.runsettings import RunSettings
from classvis.track.runs import finished_run_with_tag, reap_dead_runs


def skip_if_finished(experiment_id: str, digest: str, settings: RunSettings,
                      job: Job) -> dict[str, float] | None:
    """Resume: the metrics of an identical run that already FINISHED, if any."""
    if settings.force:
        return None
    done = finished_run_with_tag(experiment_id, keys.CONFIG_DIGEST, digest)
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
