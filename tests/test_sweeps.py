"""Sweeps that never lose a run: resume, parallel SQLite writers, bad jobs, determinism."""

from __future__ import annotations

import statistics

import pytest
from conftest import training_runs
from test_train_e2e import client_for, train

pytestmark = pytest.mark.slow
FAST = ("dataset=digits", "trainer.teacher.epochs=2", "trainer.student.steps=200")


def sweeps_of(db, experiment):
    """A store's sweep parent runs, oldest first."""
    client = client_for(db)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id],
                              filter_string="tags.`classvis.kind` = 'sweep'",
                              order_by=["attributes.start_time ASC"])


def runs_of(db, experiment):
    client = client_for(db)
    found = client.get_experiment_by_name(experiment)
    return training_runs(client, [found.experiment_id]) if found else []


def test_rerun_sweep_skips_finished_jobs_unless_forced(tmp_path):
    db = tmp_path / "store.db"
    common = (*FAST, f"tracking.uri=sqlite:///{db}", "tracking.experiment=resume")
    first = train(tmp_path, "-m", *common, "seed=0,1", f"hydra.sweep.dir={tmp_path}/a")
    assert first.returncode == 0, first.stderr[-2000:]
    second = train(tmp_path, "-m", *common, "seed=0,1,2", f"hydra.sweep.dir={tmp_path}/b")
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("classvis: skipped digits") == 2
    assert "3 jobs: 1 succeeded, 2 skipped as already" in second.stdout
    runs = runs_of(db, "resume")
    assert sorted(r.data.tags["seed"] for r in runs) == ["0", "1", "2"]
    # each sweep is a parent run; the re-run's parent says what it skipped and keeps those
    # earlier runs in its table
    first_parent, second_parent = sweeps_of(db, "resume")
    assert [r.data.tags["seed"] for r in runs
            if r.data.tags["mlflow.parentRunId"] == second_parent.info.run_id] == ["2"]
    assert second_parent.data.metrics["sweep/skipped"] == 2.0
    assert second_parent.data.metrics["sweep/finished"] == 1.0
    assert f"MLflow run {second_parent.info.run_id})" in second.stdout
    note = second_parent.data.tags["mlflow.note.content"]
    assert "3 jobs: 1 finished, 0 failed, 2 skipped as already FINISHED" in note
    accuracies = [r.data.metrics["student/accuracy"] for r in runs]
    row = next(line for line in note.splitlines()
               if line.startswith("| **(every run)** (best) |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "3" and cells[3] == (f"{100 * statistics.fmean(accuracies):.2f} ± "
                                            f"{100 * statistics.stdev(accuracies):.2f}")
    forced = train(tmp_path, *common, "seed=0", "force=true")
    assert forced.returncode == 0 and "skipped" not in forced.stdout
    assert len(runs_of(db, "resume")) == 4


def test_parallel_joblib_sweep_into_sqlite_loses_nothing(tmp_path):
    db = tmp_path / "store.db"
    result = train(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *FAST,
                   "seed=0,1,2,3", f"tracking.uri=sqlite:///{db}",
                   "tracking.experiment=parallel", f"hydra.sweep.dir={tmp_path}/sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 jobs: 4 succeeded, 0 skipped" in result.stdout
    assert "database is locked" not in result.stderr.lower()
    runs = runs_of(db, "parallel")
    assert sorted(r.data.tags["seed"] for r in runs) == [str(seed) for seed in range(4)]
    assert {r.info.status for r in runs} == {"FINISHED"}
    (parent,) = sweeps_of(db, "parallel")  # the workers' runs are nested under it too
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/finished"] == 4.0
    client = client_for(db)
    metric_counts = {len(r.data.metrics) for r in runs}
    assert len(metric_counts) == 1 and metric_counts.pop() > 30
    for run in runs:
        assert len(client.get_metric_history(run.info.run_id, "student/loss")) == 200
        assert len(client.get_metric_history(run.info.run_id, "teacher/loss")) == 2


def test_invalid_and_diverging_jobs_are_reported_and_the_others_run(tmp_path):
    db = tmp_path / "store.db"
    result = train(tmp_path, "-m", *FAST, "trainer.teacher.lr=0.5,-1,1e38",
                   f"tracking.uri=sqlite:///{db}", "tracking.experiment=bad",
                   f"hydra.sweep.dir={tmp_path}/sweep")
    assert result.returncode == 1  # the sweep reports its failures...
    assert "3 jobs: 1 succeeded, 0 skipped" in result.stdout  # ...after running every job
    assert "RUNNING, 2 failed (" in result.stdout
    (line,) = [line for line in result.stderr.splitlines()
               if line.startswith("classvis: error (job 1:")]
    assert "trainer.teacher.lr=-1" in line
    assert line.endswith("): invalid config: trainer.teacher.lr: expected a number > 0, got -1.0")
    assert "loss became" in result.stderr
    runs = {r.data.params["trainer.teacher.lr"]: r for r in runs_of(db, "bad")}
    assert sorted(runs) == ["0.5", "1e+38"]  # the invalid job never opened a run
    assert runs["0.5"].info.status == "FINISHED"
    diverged = runs["1e+38"]
    assert diverged.info.status == "FAILED"
    assert diverged.data.tags["error"].startswith("DivergenceError: teacher")
    assert "student/accuracy" not in diverged.data.metrics  # nothing half-done looks finished
    (parent,) = sweeps_of(db, "bad")
    assert parent.info.status == "FAILED" and parent.data.tags["error"] == "2 of 3 jobs failed"
    assert parent.data.metrics["sweep/failed"] == 2.0


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    """Two jobs of one sweep with the same config: the second starts after the first has used
    the process's random state, so only seeding by config gives identical results."""
    db = tmp_path / "store.db"
    result = train(tmp_path, "-m", *FAST, "seed=3,3", "architecture@student=mlp",
                   "trainer.student.mixup=20", "teacher_cache.enabled=false",
                   f"tracking.uri=sqlite:///{db}", "tracking.experiment=determinism", "force=true",
                   f"hydra.sweep.dir={tmp_path}/sweep")
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = runs_of(db, "determinism")
    assert first.data.tags["teacher_origin"] == second.data.tags["teacher_origin"] == "trained"
    results = [{k: v for k, v in run.data.metrics.items() if not k.startswith("time/")}
               for run in (first, second)]
    assert results[0] == results[1]
