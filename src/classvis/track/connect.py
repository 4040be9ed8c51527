"""Opening a store: created and migrated once per process under a lock, a tracking server
checked for an answer first, the experiment found or created."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from classvis.filelock import locked
from classvis.track.retry import budget, is_transient, retrying, set_budget
from classvis.track.settings import TrackingSettings
from classvis.validation import ConfigError

_PREPARED: set[str] = set()  # stores this process has opened (created and migrated if new)
# The experiment tag MLflow 3's UI reads to choose an experiment's view, and the value that opens
# it on the runs table ("Model training"), not on traces and evaluations (GenAI); a kind the user
# set on the experiment is left alone.
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


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
        _check_server(uri, timeout=min(10.0, max(1.0, budget())))
    path = TrackingSettings(uri, "-").sqlite_path
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.with_name(f".{path.name}.lock")):
        try:
            retrying(lambda: mlflow.MlflowClient(tracking_uri=uri).search_experiments(
                max_results=1))
        except Exception as error:
            if is_transient(error):
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
                      f"not answer within {timeout:g} s: {reason})", uri)


def _http_status(message: str) -> int | None:
    """The HTTP error status in an MLflow client error, if it names one (``too many 500 error
    responses``, ``Response code 503``)."""
    found = (re.search(r"too many (\d{3}) error responses", message)
             or re.search(r"[Rr]esponse code (\d{3})", message)
             or re.search(r"\bHTTP (\d{3})\b", message))
    return int(found.group(1)) if found else None


def connect(settings: TrackingSettings) -> str:
    """Point MLflow at the store and return the experiment id, creating the experiment if needed.

    Safe when several jobs start together: a lost creation race falls back to the winner's
    experiment, and a busy SQLite store is retried.
    """
    set_budget(settings.retry_for_s)
    # MLflow's SQL store logs every database error it re-raises at ERROR, traceback and all
    # (18 of them when a store turns read-only mid-sweep); each failure is told in one line here
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
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
            if EXPERIMENT_KIND not in existing.tags:  # made before classvis set it, or by hand
                client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND,
                                          MODEL_TRAINING)
            return existing.experiment_id
        artifact_location = None
        if settings.sqlite_path is not None:
            folder = (Path(settings.artifact_dir) if settings.artifact_dir
                      else settings.sqlite_path.parent / "mlartifacts")
            slug = re.sub(r"[^0-9A-Za-z_.-]", "_", settings.experiment)
            artifact_location = (folder.resolve() / slug).as_uri()
        try:
            return client.create_experiment(settings.experiment,
                                            artifact_location=artifact_location,
                                            tags={EXPERIMENT_KIND: MODEL_TRAINING})
        except MlflowException as error:
            existing = client.get_experiment_by_name(settings.experiment)
            if existing is not None and ("already exists" in str(error).lower()
                                         or "unique" in str(error).lower()):
                return existing.experiment_id
            raise

    try:
        experiment_id = retrying(get_or_create)
    except MlflowException as error:
        status = _http_status(str(error))
        if status is None:
            raise
        raise ConfigError("tracking.uri", f"an MLflow tracking server that answers its API (it "
                          f"answered HTTP {status}, for {settings.retry_for_s:g} s of retries: "
                          f"tracking.retry_for_s)", settings.uri) from None
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
