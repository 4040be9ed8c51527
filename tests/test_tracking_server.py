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
    assert "2 jobs: 2 succeeded," in result.stdout
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


def test_a_server_restarting_mid_sweep_is_waited_for_and_one_gone_too_long_fails_the_job(
        tmp_path):
    """The server stops during a job's run: restarted within ``tracking.retry_for_s``, the jobs
    wait (saying so) and the sweep ends with every run FINISHED; gone for longer, the job fails
    with the reason once the time is up, within a minute."""
    import os
    import subprocess
    import sys
    import time

    import mlflow
    from conftest import ROOT, free_port

    port = free_port()
    backend = f"sqlite:///{tmp_path}/server.db"
    options = ("--artifacts-destination", str(tmp_path / "artifact-root"))
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)

    def sweep(seeds: str, retry_for: int, folder: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits", f"seed={seeds}",
             "trainer.teacher.epochs=40", "trainer.student.steps=300", f"tracking.uri={url}",
             "tracking.experiment=restart",
             f"tracking.retry_for_s={retry_for}", f"hydra.sweep.dir={tmp_path / folder}",
             "privacy.enabled=false"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    def runs(seed: str) -> list:
        client = mlflow.MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("restart")
        return [] if experiment is None else client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.seed = '{seed}'")

    def wait_for_run(seed: str, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + 120
        while not runs(seed):
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.3)

    with mlflow_server_at(tmp_path, backend, *options, port=port):
        first = sweep("0", 90, "a")
        wait_for_run("0", first)
    time.sleep(1)  # the server is down (and starting again, 7 s) while the job trains and logs
    with mlflow_server_at(tmp_path, backend, *options, port=port):
        out, _ = first.communicate(timeout=300)
        assert first.returncode == 0, out[-3000:]
        assert "1 jobs: 1 succeeded," in out
        assert "tracking store busy or unreachable" in out and "retrying for up to" in out
        assert [run.info.status for run in runs("0")] == ["FINISHED"]

        second = sweep("2", 2, "b")
        wait_for_run("2", second)
    started = time.monotonic()
    out, _ = second.communicate(timeout=120)
    assert time.monotonic() - started < 60  # bounded: 2 s of retries per call, not minutes
    assert second.returncode != 0
    assert "giving up" in out and "1 jobs: 0 succeeded" in out, out[-3000:]
    assert "RUNNING, 1 failed" in out
    # its run, left RUNNING while the server was gone, is marked KILLED by the next job of that
    # config (or by the sweep's watchdog); tests/test_tracking_store.py -k killed_mid_job
