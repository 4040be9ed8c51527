"""Shared tracking: a sweep logs to a real ``mlflow server`` over HTTP."""

from __future__ import annotations

import pytest
from conftest import mlflow_server_at, training_runs
from test_train_e2e import all_artifacts, train

from classvis.synthetic import SyntheticSet

pytestmark = pytest.mark.slow


@pytest.fixture
def mlflow_server(tmp_path):
    with mlflow_server_at(tmp_path, f"sqlite:///{tmp_path}/server.db", "--artifacts-destination",
                          str(tmp_path / "artifact-root")) as url:
        yield url


def test_cluster_jobs_log_runs_and_artifacts_to_a_tracking_server(tmp_path, mlflow_server):
    """The production shape: jobs launched by submitit (here its local executor, the same code
    path as Slurm) in their own processes, all logging to one tracking server over HTTP."""
    import mlflow

    result = train(tmp_path, "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                   "dataset=digits", "seed=0,1", "trainer.teacher.epochs=2",
                   "trainer.student.steps=200", f"hydra.sweep.dir={tmp_path}/sweep",
                   env={"MLFLOW_TRACKING_URI": mlflow_server,
                        "MLFLOW_EXPERIMENT_NAME": "shared-team"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 of 2 jobs succeeded" in result.stdout
    assert len(list((tmp_path / "sweep").rglob("*_submitted.pkl"))) == 2  # really submitit's jobs
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the local default store
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("shared-team")
    runs = training_runs(client, [experiment.experiment_id])
    assert sorted(r.data.tags["seed"] for r in runs) == ["0", "1"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert 0.5 < run.data.metrics["student/accuracy"] <= 1.0
        assert {"visualizations.png", "confusion/student.png",
                "synthetic_set.safetensors"} <= all_artifacts(client, run.info.run_id)
        local = client.download_artifacts(run.info.run_id, "synthetic_set.safetensors",
                                          str(tmp_path / run.info.run_id))
        assert SyntheticSet.load(local).labels.tolist() == list(range(10))
    # the artifacts live in the server's artifact root, not beside the client
    assert list((tmp_path / "artifact-root").rglob("visualizations.png"))
