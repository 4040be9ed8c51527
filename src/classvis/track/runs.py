"""One MLflow run: opened by ``tracked_run``, ended FINISHED only when its body completes;
its params, tags, metrics, artifacts, datasets and models logged with retries."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from classvis import runkeys as keys
from classvis.track.interrupt import INTERRUPTED, Terminated, sigterm_stops_the_run, store_call
from classvis.track.liveness import claimants, forget_process, heartbeat, identity, reap
from classvis.track.models import log_models
from classvis.track.retry import FAILING_RETRY_S, budget, retrying

SYSTEM_METRICS_INTERVAL = 1.0  # seconds between samples of tracking.system_metrics
DATASET_CONTEXT = "mlflow.data.context"  # MLflow's input tag: how a run used a dataset
# the dataset a model's metric is measured on, by the metric's name within the model
MEASURED_ON = {"accuracy": "test", "synthetic_agreement": "synthetic",
               "view_agreement": "synthetic"}


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

    return reap(mlflow.MlflowClient(), experiment_id, digest, stale_after)


def config_claimants(experiment_id: str, digest: str, stale_after: float) -> list[Any]:
    """The runs holding config ``digest``, first holder first (``liveness.claimants``)."""
    import mlflow

    return claimants(mlflow.MlflowClient(), experiment_id, digest, stale_after)


class Withdrawn(Exception):
    """Raised in a ``tracked_run`` to withdraw the run: another run holds its config. The run
    ends KILLED with the reason and is deleted (the UI's default view does not list it)."""


class TrackedRun:
    """One MLflow run, opened by ``tracked_run``; logging calls retry while the store is busy."""

    def __init__(self, run_id: str, client: Any = None, artifact_uri: str | None = None):
        import mlflow

        self.run_id = run_id
        self.client = client if client is not None else mlflow.MlflowClient()
        self._artifact_uri = artifact_uri
        self.model_ids: dict[str, str] = {}  # the logged models, by role (student, teacher)

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, value[:6000]) for key, value in params.items()]
        retrying(lambda: self.client.log_batch(self.run_id, params=entries))

    def set_tags(self, tags: dict[str, str], retry_for_s: float | None = None) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(key, str(value)) for key, value in tags.items()]
        retrying(lambda: self.client.log_batch(self.run_id, tags=entries), retry_for_s=retry_for_s)

    def log_metrics(self, metrics: dict[str, float], step: int = 0,
                    datasets: dict[str, tuple[str, str]] | None = None) -> None:
        """Log the metrics; a model's (``student/...``, ``teacher/...``) are linked to the model
        the run logged for that role, and each to the dataset it was measured on (``datasets``:
        (name, digest) by context: ``test`` for accuracies, ``synthetic`` for agreements), so the
        model's page in the UI shows its metrics and datasets."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = []
        for key, value in metrics.items():
            role, _, measure = key.partition("/")
            model_id = self.model_ids.get(role)
            dataset = ((datasets or {}).get(MEASURED_ON.get(measure, ""))
                       if model_id is not None else None)
            entries.append(Metric(key, float(value), now, int(step), model_id=model_id,
                                  dataset_name=dataset[0] if dataset else None,
                                  dataset_digest=dataset[1] if dataset else None))
        retrying(lambda: self.client.log_batch(self.run_id, metrics=entries))

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
        """Log ``runrecords.ModelRecord`` networks as MLflow models of this run (``track.models``);
        returns each one's model URI, by role (``log_metrics`` links their metrics to them)."""
        with store_call():
            logged = log_models(models)
        self.model_ids.update({role: model_id for role, (_, model_id) in logged.items()})
        return {role: uri for role, (uri, _) in logged.items()}

    def link_model(self, model_id: str) -> None:
        """Log the MLflow logged model ``model_id`` as an input of this run (the teacher it
        distilled), shown in the run's Inputs and the model's page."""
        from mlflow.entities import LoggedModelInput

        with store_call():
            retrying(lambda: self.client.log_inputs(self.run_id,
                                                    models=[LoggedModelInput(model_id)]))

    def log_datasets(self, datasets: list[Any]) -> None:
        """Log ``runrecords.DatasetInput`` records as the run's dataset inputs, each with its
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
    run = retrying(lambda: mlflow.start_run(run_name=run_name, tags={**tags, **identity()},
                                            log_system_metrics=system_metrics))
    opened = time.monotonic()
    tracked = TrackedRun(run.info.run_id, artifact_uri=run.info.artifact_uri)
    try:
        with sigterm_stops_the_run(), heartbeat(tracked.client, tracked.run_id, beat_every):
            yield tracked
            if system_metrics:  # MLflow logs its first sample after one interval: a shorter
                # run would have none
                time.sleep(max(0.0, opened + SYSTEM_METRICS_INTERVAL + 0.5 - time.monotonic()))
    except Withdrawn as error:
        with contextlib.suppress(Exception):
            tracked.set_tags({keys.ERROR: f"withdrawn: {error}"[:4000],
                              keys.STATUS_REASON: "withdrawn"})
        _end_run(tracked, "KILLED")
        retrying(lambda: tracked.client.delete_run(tracked.run_id))
        raise
    except BaseException as error:
        status = "KILLED" if isinstance(error, (KeyboardInterrupt, Terminated)) else "FAILED"
        words = INTERRUPTED if isinstance(error, KeyboardInterrupt) and not str(error) else error
        reason = f"{type(error).__name__}: {words}".splitlines()[0][:4000]
        # briefly: a store that is down now leaves the run to be reaped by the next job
        with contextlib.suppress(Exception):
            tracked.set_tags({keys.ERROR: reason, keys.STATUS_REASON: status.lower()},
                             retry_for_s=min(FAILING_RETRY_S, budget()))
        _end_run(tracked, status, min(FAILING_RETRY_S, budget()))
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
        forget_process(tracked.client, tracked.run_id)
    finally:
        with contextlib.suppress(Exception):
            mlflow.end_run(status=status)
