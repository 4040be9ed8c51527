"""Hyperparameter search through Hydra's Optuna sweeper: every trial an MLflow run, the best one
reported back by the sweeper."""

from __future__ import annotations

import math

import pytest
import yaml
from test_sweeps import runs_of
from test_train_e2e import train

pytestmark = pytest.mark.slow


def test_optuna_search_maximises_student_accuracy_over_real_runs(tmp_path):
    db = tmp_path / "store.db"
    sweep = tmp_path / "search"
    result = train(tmp_path, "-m", "hparams_search=student_accuracy", "dataset=digits",
                   "hydra.sweeper.n_trials=3", "trainer.teacher.epochs=2",
                   "architecture@student=mlp",  # a student whose accuracy depends on the search
                   f"tracking.uri=sqlite:///{db}", "tracking.experiment=search",
                   f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 of 3 jobs succeeded" in result.stdout
    runs = runs_of(db, "search")
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    # trials are told apart by name and carry the sampled values as params
    assert sorted(r.info.run_name.rsplit(" | ", 1)[1] for r in runs) == [
        "trial 0", "trial 1", "trial 2"]
    sampled = [(float(r.data.params["extractor.l2"]), int(r.data.params["extractor.steps"]),
                float(r.data.params["trainer.student.lr"])) for r in runs]
    assert len(set(sampled)) == 3
    for l2, steps, lr in sampled:
        assert 0.05 <= l2 <= 5.0 and 20 <= steps <= 2000 and 0.05 <= lr <= 1.0
    # the sweeper saw what the runs logged, and reports the best of them
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    accuracies = [r.data.metrics["student/accuracy"] for r in runs]
    assert math.isclose(best["best_value"], max(accuracies))
    winners = {float(r.data.params["extractor.l2"])
               for r, accuracy in zip(runs, accuracies, strict=True)
               if accuracy == max(accuracies)}
    assert any(math.isclose(best["best_params"]["extractor.l2"], l2) for l2 in winners)
    assert "Best value" in result.stderr + result.stdout
