"""Everything MLflow: the store, the experiment, one run's params, metrics, tags and artifacts.

The default store is an embedded SQLite database at one absolute path, so every job of a multirun
lands in the same experiment whatever its working directory. ``MLFLOW_TRACKING_URI`` and
``MLFLOW_EXPERIMENT_NAME`` are honoured through the config (see conf/config.yaml).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from classvis import runkeys as keys
from classvis.settings import require

log = logging.getLogger(__name__)
SYSTEM_METRICS_INTERVAL = 1.0  # seconds between samples of tracking.system_metrics
DATASET_CONTEXT = "mlflow.data.context"  # MLflow's input tag: how a run used a dataset
T = TypeVar("T")


@dataclass(frozen=True)
class TrackingSettings:
    """``uri``: an MLflow tracking URI (``sqlite:///path.db``, ``http://host:5000``, ...).
    ``artifact_dir``: where a new experiment in a local SQLite store keeps its artifacts
    (default: ``mlartifacts`` beside the database). ``system_metrics``: MLflow samples the
    machine's CPU, memory (and GPU, with ``nvidia-ml-py``) every second into ``system/*``."""

    uri: str
    experiment: str
    artifact_dir: str | None = None
    system_metrics: bool = False

    def check(self, key: str) -> None:
        require(bool(self.uri), f"{key}.uri", "an MLflow tracking URI", self.uri)
        require(bool(self.experiment.strip()), f"{key}.experiment", "an experiment name",
                self.experiment)

    @property
    def sqlite_path(self) -> Path | None:
        if self.uri.startswith("sqlite:///"):
            return Path(self.uri[len("sqlite:///"):])
        return None


def absolute_uri(uri: str, base: Path) -> str:
    """Make a relative ``sqlite:///file.db`` URI absolute against ``base``."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base / uri[len("sqlite:///"):]).resolve())
    return uri


def _is_transient(error: Exception) -> bool:
    text = str(error).lower()
    return any(s in text for s in ("database is locked", "database table is locked",
                                   "unable to open database", "connection refused",
                                   "temporarily unavailable", "busy"))


def retrying(call: Callable[[], T], attempts: int = 8) -> T:
    """Run ``call``, retrying with jittered backoff while the store reports it is busy."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:
            if attempt == attempts - 1 or not _is_transient(error):
                raise
            delay = min(4.0, 0.1 * 2 ** attempt) * (0.5 + random.random())
            log.warning("tracking store busy (%s); retrying in %.1fs", error, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def connect(settings: TrackingSettings) -> str:
    """Point MLflow at the store and return the experiment id, creating the experiment if needed.

    Safe when several jobs start together: a lost creation race falls back to the winner's
    experiment, and a busy SQLite store is retried.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if settings.sqlite_path is not None:
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.uri)
    client = mlflow.MlflowClient()

    def get_or_create() -> str:
        existing = client.get_experiment_by_name(settings.experiment)
        if existing is not None:
            if existing.lifecycle_stage == "deleted":
                client.restore_experiment(existing.experiment_id)
            return existing.experiment_id
        artifact_location = None
        if settings.sqlite_path is not None:
            folder = (Path(settings.artifact_dir) if settings.artifact_dir
                      else settings.sqlite_path.parent / "mlartifacts")
            slug = re.sub(r"[^0-9A-Za-z_.-]", "_", settings.experiment)
            artifact_location = (folder.resolve() / slug).as_uri()
        try:
            return client.create_experiment(settings.experiment,
                                            artifact_location=artifact_location)
        except MlflowException as error:
            existing = client.get_experiment_by_name(settings.experiment)
            if existing is not None and ("already exists" in str(error).lower()
                                         or "unique" in str(error).lower()):
                return existing.experiment_id
            raise

    experiment_id = retrying(get_or_create)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as dotted keys -> string values (MLflow params)."""
    if isinstance(tree, dict):
        items: dict[str, str] = {}
        for key, value in tree.items():
            items.update(flatten(value, f"{prefix}{key}."))
        return items
    return {prefix[:-1]: str(tree)}


def finished_run_with_tag(experiment_id: str, key: str, value: str):
    """The latest FINISHED run of the experiment whose tag ``key`` equals ``value``, if any."""
    import mlflow

    runs = retrying(lambda: mlflow.MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`{key}` = '{value}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1))
    return runs[0] if runs else None


class TrackedRun:
    """One MLflow run, opened by ``tracked_run``; logging calls retry while the store is busy."""

    def __init__(self, run_id: str, client: Any = None):
        import mlflow

        self.run_id = run_id
        self.client = client if client is not None else mlflow.MlflowClient()

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, value[:6000]) for key, value in params.items()]
        retrying(lambda: self.client.log_batch(self.run_id, params=entries))

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(key, str(value)) for key, value in tags.items()]
        retrying(lambda: self.client.log_batch(self.run_id, tags=entries))

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self.log_series({key: [(step, value)] for key, value in metrics.items()})

    def log_series(self, series: dict[str, list[tuple[int, float]]]) -> None:
        """Log many (step, value) points per key in as few store round trips as possible."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, int(step))
                   for key, points in series.items() for step, value in points]
        retrying(lambda: self.client.log_batch(self.run_id, metrics=entries))

    def log_artifacts(self, folder: Path) -> None:
        retrying(lambda: self.client.log_artifacts(self.run_id, str(folder)))

    @property
    def artifact_uri(self) -> str:
        return str(retrying(lambda: self.client.get_run(self.run_id)).info.artifact_uri)

    def log_datasets(self, datasets: list[Any]) -> None:
        """Log ``artifacts.DatasetInput`` records as the run's dataset inputs, each with its
        context (``mlflow.data.context``), as ``mlflow.log_input`` does."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        entries = [DatasetInput(Dataset(item.name, item.digest, item.source_type, item.source,
                                        item.schema, item.profile),
                                tags=[InputTag(DATASET_CONTEXT, item.context)])
                   for item in datasets]
        retrying(lambda: self.client.log_inputs(self.run_id, datasets=entries))


@contextlib.contextmanager
def tracked_run(run_name: str, tags: dict[str, str],
                system_metrics: bool = False) -> Iterator[TrackedRun]:
    """Start a run; it ends FINISHED only if the body completes. Any error marks it FAILED (with
    the reason in the ``error`` tag), an interrupt marks it KILLED; the error is re-raised.
    ``system_metrics`` samples the machine every second while the run lasts."""
    import mlflow

    if system_metrics:  # runs last seconds: sample every second, log every sample
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL)
        mlflow.set_system_metrics_samples_before_logging(1)
    run = retrying(lambda: mlflow.start_run(run_name=run_name, tags=tags,
                                            log_system_metrics=system_metrics))
    tracked = TrackedRun(run.info.run_id)
    try:
        yield tracked
    except BaseException as error:
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:4000]
        with contextlib.suppress(Exception):
            tracked.set_tags({keys.ERROR: reason, keys.STATUS_REASON: status.lower()})
        with contextlib.suppress(Exception):
            retrying(lambda: mlflow.end_run(status=status))
        raise
    retrying(lambda: mlflow.end_run(status="FINISHED"))


class StoreError(RuntimeError):
    """A store, experiment or run a command was pointed at is not there (one line to print)."""


@dataclass
class StoredRun:
    """A run as read back from the store: plain values, no MLflow objects."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int
    tags: dict[str, str]
    metrics: dict[str, float]


def _stored(run: Any) -> StoredRun:
    return StoredRun(run.info.run_id, run.info.run_name or "", run.info.experiment_id,
                     run.info.status, run.info.start_time, dict(run.data.tags),
                     dict(run.data.metrics))


class Store:
    """A tracking store opened by the tools that read runs back (the report, export); every call
    retries while the store is busy, like the training run's own logging."""

    def __init__(self, uri: str):
        import mlflow

        self.uri = uri
        self.client = mlflow.MlflowClient(tracking_uri=uri)

    @classmethod
    def open(cls, uri: str, base: Path, option: str = "--tracking-uri") -> Store:
        """The store at ``uri`` (a relative SQLite path is taken from ``base``); a local SQLite
        store that does not exist is an error, not a new empty store."""
        uri = absolute_uri(uri, base)
        path = TrackingSettings(uri, "-").sqlite_path
        if path is not None and not path.exists():
            raise StoreError(f"{option}: no MLflow store at {uri}")
        return cls(uri)

    def experiment_id(self, name: str) -> str:
        """The id of the experiment called ``name``; an error listing the others if none."""
        experiment = retrying(lambda: self.client.get_experiment_by_name(name))
        if experiment is None:
            names = ", ".join(e.name for e in retrying(self.client.search_experiments))
            raise StoreError(f"--experiment: no experiment {name!r} in {self.uri} "
                             f"(there are: {names})")
        return str(experiment.experiment_id)

    def experiment_name(self, experiment_id: str) -> str:
        return str(retrying(lambda: self.client.get_experiment(experiment_id)).name)

    def run(self, run_id: str, option: str = "RUN_ID") -> StoredRun:
        from mlflow.exceptions import MlflowException

        try:
            return _stored(retrying(lambda: self.client.get_run(run_id)))
        except MlflowException as error:
            raise StoreError(f"{option}: no run {run_id!r} in {self.uri} "
                             f"({str(error).splitlines()[0]})") from None

    def finished_runs(self, experiment_id: str, tag: tuple[str, str] | None = None
                      ) -> Iterator[StoredRun]:
        """Every FINISHED run of the experiment (with the tag ``(key, value)`` if given),
        following the store's pagination."""
        query = "attributes.status = 'FINISHED'"
        if tag is not None:
            query += f" and tags.`{tag[0]}` = '{tag[1]}'"
        token = None
        while True:
            page = retrying(functools.partial(
                self.client.search_runs, [experiment_id], filter_string=query, max_results=1000,
                page_token=token))
            yield from (_stored(run) for run in page)
            token = page.token
            if not token:
                return

    def artifact_names(self, run_id: str, folder: str | None = None) -> list[str]:
        return [item.path for item in retrying(
            lambda: self.client.list_artifacts(run_id, folder))]

    def log_files(self, run_id: str, files: list[Path], artifact_path: str) -> None:
        for path in files:
            retrying(functools.partial(self.client.log_artifact, run_id, str(path),
                                       artifact_path))

    def download_artifact(self, run_id: str, path: str, folder: Path) -> Path:
        return Path(retrying(lambda: self.client.download_artifacts(run_id, path, str(folder))))

    def log_files_to_summary_run(self, experiment_id: str, kind: str, title: str,
                                 files: list[Path], artifact_path: str) -> str:
        """Log ``files`` under ``artifact_path`` of the experiment's run tagged ``kind`` (made on
        first use, then updated, so one experiment has one summary run per kind)."""
        import tempfile

        client = self.client
        existing = retrying(lambda: client.search_runs(
            [experiment_id], filter_string=f"tags.`{keys.KIND}` = '{kind}'", max_results=1))
        if existing:
            run_id = existing[0].info.run_id
            retrying(lambda: client.update_run(run_id, status="RUNNING"))
        else:
            run_id = retrying(lambda: client.create_run(
                experiment_id, run_name=title, tags={keys.KIND: kind})).info.run_id
        with tempfile.TemporaryDirectory() as staging:
            for path in files:
                (Path(staging) / path.name).write_bytes(path.read_bytes())
            retrying(lambda: client.log_artifacts(run_id, staging, artifact_path=artifact_path))
        retrying(lambda: client.set_terminated(run_id, status="FINISHED"))
        return str(run_id)

    def create_run(self, experiment_id: str, name: str, tags: dict[str, str],
                   params: dict[str, str]) -> str:
        """A RUNNING run that this process ends with ``end_run`` (a sweep's parent)."""
        run_id = str(retrying(lambda: self.client.create_run(
            experiment_id, run_name=name, tags=tags)).info.run_id)
        TrackedRun(run_id, self.client).log_params(params)
        return run_id

    def end_run(self, run_id: str, status: str, metrics: dict[str, float],
                tags: dict[str, str], folder: Path | None, artifact_path: str) -> None:
        run = TrackedRun(run_id, self.client)
        run.log_metrics(metrics)
        run.set_tags(tags)
        if folder is not None:
            retrying(lambda: self.client.log_artifacts(run_id, str(folder), artifact_path))
        retrying(lambda: self.client.set_terminated(run_id, status=status))

    def runs(self, run_ids: list[str]) -> list[StoredRun]:
        """The runs with these ids that still exist."""
        from mlflow.exceptions import MlflowException

        found = []
        for run_id in run_ids:
            with contextlib.suppress(MlflowException):
                found.append(_stored(retrying(functools.partial(self.client.get_run, run_id))))
        return found

    def children(self, experiment_id: str, parent_id: str) -> list[StoredRun]:
        """The FINISHED runs nested under ``parent_id`` (a sweep's jobs)."""
        return list(self.finished_runs(experiment_id, (keys.PARENT_RUN, parent_id)))
