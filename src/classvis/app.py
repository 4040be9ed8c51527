"""The Hydra edge: config -> validated settings -> a recorded run (``record``), and what a job
that fails or is refused prints and leaves behind.

``main`` is the task function behind ``train.py``. In a multirun a failing job is recorded
(FAILED in MLflow, one line on stderr, a status file in its job folder) and the sweep carries on;
its run is nested under the sweep's parent run (``sweep.SweepSummary``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from classvis import lifecycle
from classvis.fit import DivergenceError
from classvis.from_config import run_settings
from classvis.job import Job, write_status
from classvis.naming import varying_words
from classvis.record import InvalidInput, record_run
from classvis.sweep import job_sweep
from classvis.track.interrupt import INTERRUPTED, Terminated
from classvis.validation import ConfigError

log = logging.getLogger("classvis")


def current_job() -> Job:
    if not HydraConfig.initialized():
        return Job(False, None, "", Path.cwd(), None)
    hydra = HydraConfig.get()
    multirun = hydra.mode == RunMode.MULTIRUN
    parent, varying = (job_sweep(Path(hydra.runtime.cwd) / hydra.sweep.dir) if multirun
                       else (None, []))
    return Job(
        multirun=multirun,
        number=hydra.job.get("num"),  # type: ignore[attr-defined]  # a DictConfig at run time
        overrides=" ".join(hydra.overrides.task),
        base_dir=Path(hydra.runtime.cwd),
        output_dir=Path(hydra.runtime.output_dir),
        search="optuna" in str(hydra.sweeper.get("_target_", "")).lower(),
        parent_run=parent,
        choices=group_choices(hydra.runtime.choices),
        varying=varying_words([str(item) for item in hydra.overrides.task], varying),
    )


def group_choices(choices: Any) -> dict[str, str]:
    """The options chosen for classvis's config groups, from Hydra's ``runtime.choices``:
    ``architecture@teacher`` is named by where it goes (``teacher``); Hydra's own groups, the
    per-architecture recipes the defaults pick and groups left unset are left out."""
    chosen = {}
    for group, option in choices.items():
        if option is None or group.startswith(("hydra/", "recipe/")):
            continue
        chosen[group.split("@", 1)[1] if "@" in group else group] = str(option)
    return chosen


def _remove_output_dir(job: Job) -> None:
    """A single run refused at the door leaves nothing behind: the folder Hydra made for it
    (``outputs/<date>/<time>``, holding only Hydra's copy of the config and the log) goes,
    and so do the parents it made that are left empty."""
    if job.output_dir is None or not job.output_dir.is_dir():
        return
    import shutil

    shutil.rmtree(job.output_dir, ignore_errors=True)
    folder = job.output_dir.parent
    while folder != job.base_dir and job.base_dir in folder.parents:
        try:
            folder.rmdir()  # only when empty
        except OSError:
            break
        folder = folder.parent


def _failed(job: Job, message: str, exit_code: int, **details: Any) -> dict[str, float]:
    where = f" (job {job.number}: {job.overrides})" if job.multirun else ""
    print(f"classvis: error{where}: {message}", file=sys.stderr, flush=True)
    if not job.multirun and exit_code == 2:  # refused before any work
        _remove_output_dir(job)
        raise SystemExit(exit_code)
    write_status(job, "FAILED", error=message, **details)
    if not job.multirun:
        raise SystemExit(exit_code)
    return {}  # the sweep carries on; a search sees a failed trial (no metrics)


def _traceback_to_log_file() -> str | None:
    """Write the exception being handled, with its traceback, to the job's log file only (Hydra's
    ``<job dir>/<job name>.log``), so the console keeps one line per failed job; the file's
    path, or None when the job logs to no file."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "job failed", (),
                            sys.exc_info())
    files = [handler for handler in logging.getLogger().handlers
             if isinstance(handler, logging.FileHandler) and handler.baseFilename != os.devnull]
    for handler in files:
        handler.handle(record)
    return files[0].baseFilename if files else None


def main(cfg: DictConfig) -> dict[str, float]:
    """Run one experiment; returns its metrics (``student/accuracy``, ``synthetic/images``, ...)
    for a search to optimise, none when the job failed."""
    job = current_job()
    if job.multirun:
        lifecycle.stop_with_the_sweep()
        if lifecycle.orphaned():  # a job queued before the sweep died: nobody waits for it
            os._exit(128 + signal.SIGTERM)
    try:
        settings = run_settings(cfg, job.base_dir)
    except ConfigError as error:
        return _failed(job, f"invalid config: {error}", exit_code=2)
    try:
        metrics, line = record_run(cfg, settings, job)
    except InvalidInput as error:
        return _failed(job, f"invalid input: {error}", exit_code=2)
    except Terminated as stopped:  # the sweep stops too: SIGTERM was meant for all of it
        print(f"classvis: {stopped}; its MLflow run is marked KILLED", file=sys.stderr,
              flush=True)
        if lifecycle.orphaned():  # a worker of a dead sweep: no further job
            os._exit(128 + signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None
    except KeyboardInterrupt:  # Ctrl-C: the sweep stops too, as a shell expects
        print(f"classvis: {INTERRUPTED}; its MLflow run is marked KILLED", file=sys.stderr,
              flush=True)
        raise SystemExit(128 + signal.SIGINT) from None
    except (ConfigError, DivergenceError) as error:
        return _failed(job, str(error), exit_code=1)
    except OSError as error:  # a full disk, a read-only store: the reason says it all
        return _failed(job, f"{type(error).__name__}: {error}".splitlines()[0], exit_code=1)
    except Exception as error:
        where = _traceback_to_log_file()
        if where is None and not job.multirun:
            raise  # no log file to keep it in: the traceback is the only record
        told = f"{type(error).__name__}: {error}".splitlines()[0]
        return _failed(job, told + (f" (traceback in {where})" if where else ""), exit_code=1)
    if line is not None:
        print(line, flush=True)
    return metrics
