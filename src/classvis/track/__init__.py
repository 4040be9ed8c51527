"""Everything MLflow: the store, the experiment, one run's params, metrics, tags and artifacts.

The default store is an embedded SQLite database at one absolute path, so every job of a multirun
lands in the same experiment whatever its working directory. ``MLFLOW_TRACKING_URI`` and
``MLFLOW_EXPERIMENT_NAME`` are honoured through the config (see conf/config.yaml).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from classvis import runkeys as keys
from classvis.filelock import locked
from classvis.settings import ConfigError, require, writable_folder

log = logging.getLogger(__name__)
IN_MEMORY = ("sqlite://", "sqlite:///:memory:")
# the stores MLflow's tracking client opens (SQLAlchemy dialects may carry a driver: mysql+pymysql)
URI_SCHEMES = frozenset({"sqlite", "http", "https", "postgresql", "mysql", "mssql", "file",
                         "databricks"})
SYSTEM_METRICS_INTERVAL = 1.0  # seconds between samples of tracking.system_metrics
DATASET_CONTEXT = "mlflow.data.context"  # MLflow's input tag: how a run used a dataset
T = TypeVar("T")


@dataclass(frozen=True)
class TrackingSettings:
    """``uri``: an MLflow tracking URI (``sqlite:///path.db``, ``http://host:5000``, ...).
    ``artifact_dir``: where a new experiment in a local SQLite store keeps its artifacts
    (default: ``mlartifacts`` beside the database). ``stale_after_s``: a RUNNING run on another
    host with no heartbeat for this long counts as dead (``liveness``). ``system_metrics``:
    MLflow samples CPU, memory (and GPU, with ``nvidia-ml-py``) every second into ``system/*``.
    ``log_models``: which trained networks become MLflow models (``track.models``).
    ``retry_for_s``: how long a job waits for a busy or unreachable store before it fails."""

    uri: str
    experiment: str
    artifact_dir: str | None = None
    system_metrics: bool = False
    stale_after_s: float = 600.0
    retry_for_s: float = 120.0
    log_models: Literal["student", "all", "none"] = "student"

    @property
    def heartbeat_every(self) -> float:
        return min(30.0, self.stale_after_s / 4)

    def check(self, key: str) -> None:
        require(bool(self.uri), f"{key}.uri", "an MLflow tracking URI", self.uri)
        require(math.isfinite(self.stale_after_s) and self.stale_after_s > 0,
                f"{key}.stale_after_s", "a number of seconds > 0", self.stale_after_s)
        require(math.isfinite(self.retry_for_s) and self.retry_for_s >= 0,
                f"{key}.retry_for_s", "a number of seconds >= 0", self.retry_for_s)
        require(self.uri not in IN_MEMORY, f"{key}.uri", "a store that outlives the run (an "
                "in-memory SQLite store loses every run; e.g. sqlite:///mlflow.db)", self.uri)
        require(bool(self.experiment.strip()), f"{key}.experiment", "an experiment name",
                self.experiment)
        scheme = self.uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in self.uri else ""
        require((scheme in URI_SCHEMES and "://" in self.uri) or scheme == "file"
                or self.uri == "databricks", f"{key}.uri",
                "an MLflow tracking URI (sqlite:///path.db, http(s)://host:port, "
                "postgresql://..., mysql://..., file:///folder)", self.uri)
        if self.sqlite_path is not None:
            writable_folder(self.sqlite_path.parent, f"{key}.uri")
            require(not self.sqlite_path.is_dir(), f"{key}.uri",
                    "an SQLite database file (a folder is there)", self.uri)
        if self.artifact_dir is not None:
            writable_folder(self.artifact_dir, f"{key}.artifact_dir")

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
                                   "connection aborted", "connection reset", "remotedisconnected",
                                   "max retries exceeded", "temporarily unavailable", "busy",
                                   "bad gateway", "service unavailable", "gateway timeout"))


# How long a call waits for a busy or unreachable store (``tracking.retry_for_s``, set by
# ``connect``): a tracking server restarting mid-sweep is waited for, then the job fails.
_retry_for_s = 120.0
FAILING_RETRY_S = 10.0  # how long a failing run tries to record why, before giving up


def retrying(call: Callable[[], T], also: Callable[[Exception], bool] | None = None,
             retry_for_s: float | None = None) -> T:
    """Run ``call``, retrying with jittered backoff while the store is busy or unreachable (or
    while ``also`` says an error is worth another try), for at most ``retry_for_s`` seconds
    (default ``tracking.retry_for_s``), saying so while it waits; then the last error is raised."""
    budget = _retry_for_s if retry_for_s is None else retry_for_s
    deadline = time.monotonic() + budget
    attempt, said = 0, -math.inf
    while True:
        try:
            with store_call():
                return call()
        except Exception as error:
            again = _is_transient(error) or (also is not None and also(error))
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


_PREPARED: set[str] = set()  # stores this process has opened (created and migrated if new)


def prepare_store(uri: str) -> None:
    """Open the store at ``uri`` once per process. MLflow creates and migrates a new SQLite store
    when a process first opens it, and processes doing so at the same moment corrupt it (a
    half-migrated schema every later client fails on): an inter-process lock beside the database
    lets one process create it while the others wait and then open the finished store. A store
    MLflow cannot open is a one-line error naming ``tracking.uri``."""
    if uri in _PREPARED:
        return
    _prepare(uri)
    _PREPARED.add(uri)


def _prepare(uri: str) -> None:
    import mlflow

    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    path = TrackingSettings(uri, "-").sqlite_path
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.with_name(f".{path.name}.lock")):
        try:
            retrying(lambda: mlflow.MlflowClient(tracking_uri=uri).search_experiments(
                max_results=1))
        except Exception as error:
            if _is_transient(error):
                raise
            raise ConfigError("tracking.uri", "an MLflow store this MLflow version can open "
                              f"({type(error).__name__}: {str(error).splitlines()[0][:300]})",
                              uri) from None


def _check_server(uri: str, timeout: float = 10.0) -> None:
    """A tracking server must answer its health check within seconds: MLflow's client would
    retry an unreachable one for minutes per call."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as answer:
            if answer.status == 200:
                return
            reason = f"HTTP {answer.status}"
    except (urllib.error.URLError, OSError) as error:
        reason = str(getattr(error, "reason", error))
    raise ConfigError("tracking.uri", f"a reachable MLflow tracking server (its /health did "
                      f"not answer within {timeout:.0f} s: {reason})", uri)


def connect(settings: TrackingSettings) -> str:
    """Point MLflow at the store and return the experiment id, creating the experiment if needed.

    Safe when several jobs start together: a lost creation race falls back to the winner's
    experiment, and a busy SQLite store is retried.
    """
    global _retry_for_s
    _retry_for_s = settings.retry_for_s
    if settings.uri.startswith(("http://", "https://")):
        # MLflow's client would retry a dead server for minutes per call, silently; classvis
        # retries each call itself, saying so, for tracking.retry_for_s
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    prepare_store(settings.uri)
    import mlflow
    from mlflow.exceptions import MlflowException

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


def reap_dead_runs(experiment_id: str, digest: str, stale_after: float
                   ) -> tuple[list[tuple[str, str]], Any]:
    """Mark dead RUNNING runs of config ``digest`` KILLED; return them and a live one, if any
    (``liveness.reap``)."""
    import mlflow

    from classvis.track.liveness import reap

    return reap(mlflow.MlflowClient(), experiment_id, digest, stale_after)


class TrackedRun:
    """One MLflow run, opened by ``tracked_run``; logging calls retry while the store is busy."""

    def __init__(self, run_id: str, client: Any = None, artifact_uri: str | None = None):
        import mlflow

        self.run_id = run_id
        self.client = client if client is not None else mlflow.MlflowClient()
        self._artifact_uri = artifact_uri

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, value[:6000]) for key, value in params.items()]
        retrying(lambda: self.client.log_batch(self.run_id, params=entries))

    def set_tags(self, tags: dict[str, str], retry_for_s: float | None = None) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(key, str(value)) for key, value in tags.items()]
        retrying(lambda: self.client.log_batch(self.run_id, tags=entries), retry_for_s=retry_for_s)

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
        """Where the run's artifacts go (known from its start; else asked of the store)."""
        if self._artifact_uri is None:
            self._artifact_uri = str(retrying(
                lambda: self.client.get_run(self.run_id)).info.artifact_uri)
        return self._artifact_uri

    def log_models(self, models: list[Any]) -> dict[str, str]:
        """Log ``artifacts.ModelRecord`` networks as MLflow models of this run (``track.models``);
        returns each one's model URI."""
        from classvis.track.models import log_models

        with store_call():
            return log_models(models)

    def log_datasets(self, datasets: list[Any]) -> None:
        """Log ``artifacts.DatasetInput`` records as the run's dataset inputs, each with its
        context (``mlflow.data.context``), as ``mlflow.log_input`` does."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        entries = [DatasetInput(Dataset(item.name, item.digest, item.source_type, item.source,
                                        item.schema, item.profile),
                                tags=[InputTag(DATASET_CONTEXT, item.context)])
                   for item in datasets]
        # two jobs logging the same new dataset at once: MLflow's get-or-create is not atomic,
        # and the loser's insert fails on the unique key; on the next try the dataset exists
        retrying(lambda: self.client.log_inputs(self.run_id, datasets=entries),
                 also=lambda error: "unique constraint failed: datasets" in str(error).lower())


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
    import threading

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
def _sigterm_stops_the_run() -> Iterator[None]:
    """Inside the body SIGTERM raises ``Terminated`` (in the main thread, where Python delivers
    signals), so the run ends KILLED with the reason instead of staying RUNNING forever."""
    import signal
    import threading

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


@contextlib.contextmanager
def tracked_run(run_name: str, tags: dict[str, str], system_metrics: bool = False,
                beat_every: float = 30.0) -> Iterator[TrackedRun]:
    """Start a run; it ends FINISHED only if the body completes. Any error marks it FAILED (with
    the reason in the ``error`` tag), an interrupt or SIGTERM marks it KILLED; the error is
    re-raised.
    ``system_metrics`` samples the machine every second while the run lasts; the run's
    heartbeat tag is refreshed every ``beat_every`` seconds (``liveness``)."""
    import mlflow

    if system_metrics:  # runs last seconds: sample every second, log every sample
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL)
        mlflow.set_system_metrics_samples_before_logging(1)
    from classvis.track.liveness import heartbeat, identity

    run = retrying(lambda: mlflow.start_run(run_name=run_name, tags={**tags, **identity()},
                                            log_system_metrics=system_metrics))
    opened = time.monotonic()
    tracked = TrackedRun(run.info.run_id, artifact_uri=run.info.artifact_uri)
    try:
        with _sigterm_stops_the_run(), heartbeat(tracked.client, tracked.run_id, beat_every):
            yield tracked
            if system_metrics:  # MLflow logs its first sample after one interval: a shorter
                # run would have none
                time.sleep(max(0.0, opened + SYSTEM_METRICS_INTERVAL + 0.5 - time.monotonic()))
    except BaseException as error:
        status = "KILLED" if isinstance(error, (KeyboardInterrupt, Terminated)) else "FAILED"
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:4000]
        # briefly: a store that is down now leaves the run to be reaped by the next job
        with contextlib.suppress(Exception):
            tracked.set_tags({keys.ERROR: reason, keys.STATUS_REASON: status.lower()},
                             retry_for_s=min(FAILING_RETRY_S, _retry_for_s))
        _end_run(tracked, status, min(FAILING_RETRY_S, _retry_for_s))
        raise
    _end_run(tracked, "FINISHED")


def _end_run(tracked: TrackedRun, status: str, retry_for_s: float | None = None) -> None:
    """Record the run's end state, retried, then leave MLflow's active run (``mlflow.end_run``
    forgets the run before it writes, so a failed write retried through it would write
    nothing)."""
    import mlflow

    try:
        retrying(lambda: tracked.client.set_terminated(tracked.run_id, status),
                 retry_for_s=retry_for_s)
    finally:
        with contextlib.suppress(Exception):
            mlflow.end_run(status=status)
