"""A new SQLite store opened by several processes at once, and a store MLflow cannot open."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

JOB = """
import sys
from classvis.track import TrackingSettings, connect, tracked_run
connect(TrackingSettings(sys.argv[1], "race"))
with tracked_run(f"job {sys.argv[2]}", {"job": sys.argv[2]}) as run:
    run.log_series({"value": [(step, float(sys.argv[2])) for step in range(20)]})
"""


@pytest.mark.slow
def test_processes_creating_one_new_store_at_once_lose_nothing(tmp_path):
    """Four processes open a store that does not exist yet at the same moment, three times over:
    one creates and migrates it while the others wait, and every run lands whole."""
    import mlflow

    for attempt in range(3):
        uri = f"sqlite:///{tmp_path / f'fresh{attempt}.db'}"
        jobs = [subprocess.Popen([sys.executable, "-c", JOB, uri, str(job)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for job in range(4)]
        errors = [job.communicate(timeout=300)[1] for job in jobs]
        assert [job.returncode for job in jobs] == [0, 0, 0, 0], [e[-2000:] for e in errors]
        client = mlflow.MlflowClient(tracking_uri=uri)
        runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
        assert sorted(run.data.tags["job"] for run in runs) == ["0", "1", "2", "3"]
        assert {run.info.status for run in runs} == {"FINISHED"}
        for run in runs:
            assert len(client.get_metric_history(run.info.run_id, "value")) == 20


def test_a_store_mlflow_cannot_open_is_one_line_naming_the_key(tmp_path):
    from classvis.settings import ConfigError
    from classvis.track import TrackingSettings, connect

    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not an SQLite database, nor a half of one" * 100)
    with pytest.raises(ConfigError) as raised:
        connect(TrackingSettings(f"sqlite:///{broken}", "any"))
    message = str(raised.value)
    assert message.startswith("tracking.uri: expected an MLflow store this MLflow version can "
                              "open (") and str(broken) in message and "\n" not in message


def test_an_unreachable_tracking_server_is_one_line_within_seconds():
    import time

    from classvis.settings import ConfigError
    from classvis.track import TrackingSettings, connect

    started = time.perf_counter()
    with pytest.raises(ConfigError) as raised:
        connect(TrackingSettings("http://127.0.0.1:1", "any"))
    assert time.perf_counter() - started < 15  # MLflow's own client retried for minutes
    message = str(raised.value)
    assert message.startswith("tracking.uri: expected a reachable MLflow tracking server (")
    assert message.endswith("got 'http://127.0.0.1:1'") and "\n" not in message


@pytest.mark.slow
def test_sigterm_during_a_run_marks_it_killed_with_the_reason(tmp_path):
    """A scheduler's time limit sends SIGTERM: the run ends KILLED, not RUNNING forever."""
    import os
    import signal
    import time

    import mlflow

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    job = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "dataset=digits",
                            "trainer.teacher.epochs=2", "trainer.student.steps=1000000",
                            f"tracking.uri={uri}", "tracking.experiment=term"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    client = mlflow.MlflowClient(tracking_uri=uri)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the run is on its student steps
        experiment = (client.get_experiment_by_name("term")
                      if (tmp_path / "store.db").exists() else None)
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        if runs and client.get_metric_history(runs[0].info.run_id, "teacher/loss"):
            break
        time.sleep(0.5)
    else:
        job.kill()
        pytest.fail("the run never started: " + job.communicate()[1][-2000:])
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "SIGTERM received" in stderr and "marked KILLED" in stderr
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "KILLED"
    assert run.data.tags["error"].startswith("Terminated: SIGTERM received")
