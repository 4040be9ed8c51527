"""The Hydra edge: config -> validated settings -> pipeline -> MLflow run.

``main`` is the task function behind ``train.py``. In a multirun a failing job is recorded
(FAILED in MLflow, one line on stderr, a status file in its job folder) and the sweep carries on;
its run is nested under the sweep's parent run (``sweep.SweepSummary``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from classvis import artifacts, pipeline
from classvis import runkeys as keys
from classvis.config import RunSettings, config_digest, resolved_mapping, run_settings
from classvis.datafiles import source_location
from classvis.device import device_name
from classvis.fit import DivergenceError
from classvis.progress import Progress, quiet_mlflow_when
from classvis.settings import ConfigError
from classvis.sweep import STATUS_FILE, SWEEP_PID, parent_run_of
from classvis.synthetic import file_digest
from classvis.track import (
    Terminated,
    connect,
    finished_run_with_tag,
    flatten,
    reap_dead_runs,
    retrying,
    tracked_run,
)

log = logging.getLogger("classvis")
PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Job:
    multirun: bool
    number: int | None
    overrides: str
    base_dir: Path
    output_dir: Path | None
    search: bool = False  # a trial of a hyperparameter search (the Optuna sweeper)
    parent_run: str | None = None  # the sweep's parent run

    def run_name(self, settings: RunSettings) -> str:
        """The run's name; trials of a search share everything else, so they get their number."""
        if self.search and self.number is not None:
            return f"{settings.run_name} | trial {self.number}"
        return settings.run_name


def current_job() -> Job:
    if not HydraConfig.initialized():
        return Job(False, None, "", Path.cwd(), None)
    hydra = HydraConfig.get()
    return Job(
        multirun=hydra.mode == RunMode.MULTIRUN,
        number=hydra.job.get("num"),  # type: ignore[attr-defined]  # a DictConfig at run time
        overrides=" ".join(hydra.overrides.task),
        base_dir=Path(hydra.runtime.cwd),
        output_dir=Path(hydra.runtime.output_dir),
        search="optuna" in str(hydra.sweeper.get("_target_", "")).lower(),
        parent_run=(parent_run_of(Path(hydra.runtime.cwd) / hydra.sweep.dir)
                    if hydra.mode == RunMode.MULTIRUN else None),
    )


def git_commit() -> tuple[str, bool] | None:
    """The project's commit and whether its tree has uncommitted changes, when it is a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_DIR, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit, bool(dirty)


def run_tags(settings: RunSettings, job: Job) -> dict[str, str]:
    tags = {
        keys.DATASET: settings.dataset_name,
        keys.EXTRACTOR: settings.extractor_name,
        keys.PER_CLASS: str(settings.per_class),
        keys.TEACHER: settings.teacher_label,
        keys.STUDENT: settings.student.label,
        keys.SEED: str(settings.seed),
        keys.HYDRA_OVERRIDES: job.overrides,
        keys.HYDRA_JOB_NUM: "" if job.number is None else str(job.number),
        keys.SOURCE_NAME: "train.py",
        keys.DEVICE: settings.device,
        keys.DEVICE_NAME: device_name(settings.device),
    }
    for kind, variant in (("extractor", settings.extractor_variant),
                          ("teacher", settings.teacher_variant),
                          ("student", settings.student_variant)):
        if variant:
            tags[keys.variant(kind)] = variant
    if settings.dataset.classes is not None:
        tags[keys.CLASSES] = json.dumps(list(settings.dataset.classes))
    if settings.dataset.one_vs_rest is not None:
        tags[keys.ONE_VS_REST] = str(settings.dataset.one_vs_rest)
    if settings.one_vs_rest_balance is not None:
        tags[keys.ONE_VS_REST_BALANCE] = settings.one_vs_rest_balance
    if settings.swap.enabled:
        tags[keys.SWAP] = settings.swap.label
        tags[keys.SWAP_CLASS] = str(settings.swap.replace)
        tags[keys.SWAP_TARGETS] = settings.swap.targets
    if settings.compress.enabled:
        tags[keys.COMPRESS] = "biases"
    if settings.caveat:
        tags[keys.CAVEAT] = settings.caveat
    if settings.source is not None:
        tags.update({keys.EXTRACTOR: settings.source.get("extractor_name", "unknown"),
                     keys.PER_CLASS: settings.source.get("per_class", "1"),
                     keys.SYNTHETIC_FILE: str(settings.dataset.path)})
        for key in ("run_id", "experiment"):
            if key in settings.source:
                tags[keys.SYNTHETIC_SOURCE_PREFIX + key] = settings.source[key]
    commit = git_commit()
    if commit is not None:
        tags[keys.GIT_COMMIT] = tags[keys.SOURCE_GIT_COMMIT] = commit[0]
        tags[keys.GIT_DIRTY] = str(commit[1]).lower()
    return tags


def summary_line(run_name: str, result: pipeline.RunResult, metrics: dict[str, float],
                 link: str, caveat: str = "") -> str:
    """One line per finished run: what it was, the accuracies, the time, where to look, and why
    the combination is weak when it is (``RunSettings.caveat``)."""
    evaluations = result.evaluations
    parts = [f"{name.replace('_', ' ')} {evaluations[name].accuracy:.2%}"
             for name in ("teacher", "student", "untrained", "baseline_student", "compressed",
                          "donor_teacher") if name in evaluations]
    if result.file_info is not None:
        if "source_teacher_accuracy" in result.file_info:
            parts.insert(0, f"teacher {result.file_info['source_teacher_accuracy']:.2%} (recorded "
                            f"in the file)")
        if result.test_unavailable is not None:
            parts.append(f"no real test set ({result.test_unavailable})")
        parts.append(f"agreement with the file's soft targets "
                     f"{result.file_info['synthetic_agreement']:.2%}")
    if result.privacy is not None:
        parts.append(f"privacy distance ratio {result.privacy.ratio:.2f}")
    weak = f"; weak by nature: {caveat}" if caveat else ""
    return (f"classvis: {run_name}: {', '.join(parts)} in {metrics[keys.TOTAL_TIME]:.1f}s "
            f"({link}){weak}")


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    """Where to find a run: its page on a tracking server, or its id in a local store."""
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"MLflow run {run_id}"


def _write_status(job: Job, status: str, **details: Any) -> None:
    if job.output_dir is None:
        return
    job.output_dir.mkdir(parents=True, exist_ok=True)
    record = {"status": status, "job": job.number, "overrides": job.overrides, **details}
    (job.output_dir / STATUS_FILE).write_text(json.dumps(record, indent=2))


class InvalidInput(Exception):
    """The run's data does not suit its config (found on loading it, before a run is opened)."""


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
    _write_status(job, "FAILED", error=message, **details)
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


def _skip_if_finished(experiment_id: str, digest: str, settings: RunSettings,
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
    _write_status(job, "SKIPPED", run_id=done.info.run_id, student_accuracy=accuracy)
    return dict(done.data.metrics)


def _reap_or_skip_running(experiment_id: str, digest: str, settings: RunSettings,
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
    _write_status(job, "SKIPPED", run_id=alive.info.run_id, running=True)
    return {}


@contextlib.contextmanager
def _while_running(run: Any) -> Iterator[None]:
    _running.append(run)
    try:
        yield
    finally:
        _running.remove(run)


def _run_tracked(cfg: DictConfig, settings: RunSettings, job: Job
                 ) -> tuple[dict[str, float], str | None]:
    started = time.perf_counter()
    experiment_id = connect(settings.tracking)
    resolved = resolved_mapping(cfg, "config")
    resolved["device"] = settings.device   # where "auto" led on this machine
    if settings.source_file is not None:  # the file's content, not its name, determines the run
        resolved["dataset"]["sha256"] = file_digest(settings.source_file.path)
    digest = config_digest(resolved)
    skipped = _skip_if_finished(experiment_id, digest, settings, job)
    if skipped is not None:
        return skipped, None
    running = _reap_or_skip_running(experiment_id, digest, settings, job)
    if running is not None:
        return running, None
    loading = time.perf_counter()
    try:  # before the run is opened: bad data is bad input, not a failed run
        data = None if settings.from_file else pipeline.load_data(settings)
    except ConfigError as error:
        raise InvalidInput(str(error)) from None
    load_seconds = time.perf_counter() - loading
    tags = {**run_tags(settings, job), keys.CONFIG_DIGEST: digest}
    if job.parent_run is not None:
        tags[keys.PARENT_RUN] = job.parent_run
    progress = Progress(settings.progress)
    quiet_mlflow_when(not progress.enabled)
    name = job.run_name(settings)
    with tracked_run(name, tags, settings.tracking.system_metrics,
                     settings.tracking.heartbeat_every) as run, _while_running(run), \
            contextlib.ExitStack() as stack:
        run.log_params(flatten(resolved))
        result = pipeline.run(settings, on_teacher_epoch=lambda epoch, loss: run.log_metrics(
            {keys.TEACHER_LOSS: loss}, step=epoch), progress=progress, data=data)
        result.seconds["load"] = result.seconds.get("load", 0.0) + load_seconds
        logging_started = time.perf_counter()
        staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="classvis-")))
        folder = staging / "artifacts"
        folder.mkdir()
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
        figures = artifacts.write_artifacts(result, folder, name)
        run.set_tags({keys.TEACHER_SOURCE: result.teacher_source,
                      keys.TEACHER_KEY: result.teacher_key,
                      keys.CLASS_NAMES: json.dumps(result.class_names)})
        if result.file_info is not None:
            run.set_tags({keys.TEST_SET: "real" if result.test_unavailable is None
                          else "unavailable"})
        if result.swap is not None:
            run.set_tags({keys.DONOR_TEACHER_SOURCE: result.swap.donor_source,
                          keys.DONOR_TEACHER_KEY: result.swap.donor_key})
        series = {keys.STUDENT_LOSS: list(enumerate(result.student_losses, start=1))}
        if result.teacher_source == "cache":  # the stored curve, so every run shows it
            series[keys.TEACHER_LOSS] = list(enumerate(result.teacher_losses, start=1))
        run.log_series(series)
        run.log_datasets(artifacts.run_datasets(
            result, source_location(settings.dataset),
            f"{run.artifact_uri.rstrip('/')}/{keys.SYNTHETIC_SET_ARTIFACT}"))
        run.log_models(artifacts.run_models(result, settings.tracking.log_models))
        figures.draw(folder)
        run.log_artifacts(folder)
        metrics = artifacts.run_metrics(result)
        metrics[keys.LOG_TIME] = time.perf_counter() - logging_started
        metrics[keys.TOTAL_TIME] = time.perf_counter() - started
        run.log_metrics(metrics)
    line = summary_line(name, result, metrics,
                        run_link(settings.tracking.uri, experiment_id, run.run_id),
                        settings.caveat)
    student = result.evaluations.get("student")
    accuracy = student.accuracy if student is not None else math.nan
    _write_status(job, "FINISHED", run_id=run.run_id, student_accuracy=accuracy)
    return metrics, line


ORPHAN_GRACE_S = 15.0  # after its sweep died, how long a worker's run has to end KILLED
_watching_the_sweep = False
_sweep_gone = threading.Event()
_running: list[Any] = []  # the TrackedRun of the job this process is running, if any


def _stop_with_the_sweep() -> None:
    """In a worker process of a sweep (joblib's), stop when the sweep's process dies: a worker
    left behind would go on with queued jobs nobody waits for. The running job's run ends KILLED
    (SIGTERM), then the worker exits."""
    global _watching_the_sweep
    sweep = os.environ.get(SWEEP_PID)
    if _watching_the_sweep or sweep is None or int(sweep) == os.getpid() or (
            os.getppid() != int(sweep)):
        return
    _watching_the_sweep = True

    def watch() -> None:
        while os.getppid() == int(sweep):
            time.sleep(1.0)
        print(f"classvis: the sweep's process (pid {sweep}) is gone; this worker "
              f"(pid {os.getpid()}) stops", file=sys.stderr, flush=True)
        _sweep_gone.set()
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


def main(cfg: DictConfig) -> dict[str, float]:
    """Run one experiment; returns its metrics (``student/accuracy``, ``synthetic/images``, ...)
    for a search to optimise, none when the job failed."""
    job = current_job()
    if job.multirun:
        _stop_with_the_sweep()
        if _sweep_gone.is_set():  # a job queued before the sweep died: nobody waits for it
            os._exit(128 + signal.SIGTERM)
    try:
        settings = run_settings(cfg, job.base_dir)
    except ConfigError as error:
        return _failed(job, f"invalid config: {error}", exit_code=2)
    try:
        metrics, line = _run_tracked(cfg, settings, job)
    except InvalidInput as error:
        return _failed(job, f"invalid input: {error}", exit_code=2)
    except Terminated as stopped:  # the sweep stops too: SIGTERM was meant for all of it
        print(f"classvis: {stopped}; its MLflow run is marked KILLED", file=sys.stderr,
              flush=True)
        if _sweep_gone.is_set():  # a worker of a dead sweep: no further job
            os._exit(128 + signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None
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
