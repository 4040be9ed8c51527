"""Reading runs back, and writing outside a training run (the report, export, a sweep's parent run):
``Store`` over one tracking store, every call retried while the store is busy."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classvis import runkeys as keys
from classvis.track.connect import prepare_store
from classvis.track.liveness import forget_process, reap
from classvis.track.retry import retrying
from classvis.track.runs import TrackedRun
from classvis.track.settings import TrackingSettings, absolute_uri
from classvis.validation import ConfigError


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
        prepare_store(uri)
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
        try:
            return cls(uri)
        except ConfigError as error:
            raise StoreError(f"{option}: {str(error).partition(': ')[2]}") from None

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

    def reap_dead_sweeps(self, experiment_id: str, stale_after: float) -> list[tuple[str, str]]:
        """Mark sweep parent runs whose process died KILLED (``liveness.reap``)."""
        return reap(self.client, experiment_id, keys.SWEEP_KIND, stale_after, tag=keys.KIND)[0]

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        TrackedRun(run_id, self.client).log_params(params)

    def end_run(self, run_id: str, status: str, metrics: dict[str, float],
                tags: dict[str, str], folder: Path | None, artifact_path: str) -> None:
        run = TrackedRun(run_id, self.client)
        run.log_metrics(metrics)
        run.set_tags(tags)
        if folder is not None:
            retrying(lambda: self.client.log_artifacts(run_id, str(folder), artifact_path))
        retrying(lambda: self.client.set_terminated(run_id, status=status))
        forget_process(self.client, run_id)

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
