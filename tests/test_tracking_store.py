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
