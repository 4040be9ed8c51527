"""Hyperparameter search through Hydra's Optuna sweeper: every trial an MLflow run, the best one
reported back by the sweeper."""

from __future__ import annotations

import math

import pytest
import yaml
from test_sweeps import runs_of, sweeps_of
from test_train_e2e import train

pytestmark = pytest.mark.slow


def test_optuna_search_maximises_student_accuracy_over_real_runs(tmp_path):
    db = tmp_path / "store.db"
    sweep = tmp_path / "search"
    result = train(tmp_path, "-m", "hparams_search=student_accuracy", "dataset=digits",
                   "hydra.sweeper.n_trials=3", "trainer.teacher.epochs=2",
                   "architecture@student=mlp",  # a student whose accuracy depends on the search
                   "trainer.student.steps=300",
                   f"tracking.uri=sqlite:///{db}", "tracking.experiment=search",
                   f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 jobs: 3 succeeded," in result.stdout
    runs = runs_of(db, "search")
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    # trials are told apart by name, the sampled values first, and carry them as params
    assert sorted(r.info.run_name.split(": ", 1)[0] for r in runs) == [
        "trial 0", "trial 1", "trial 2"]
    for run in runs:
        assert run.info.run_name.split(": ", 1)[1].startswith(
            f"extractor.l2={float(run.data.params['extractor.l2']):.4g} extractor.steps=")
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
    # the search's parent run answers: the best value and trial, and the run that scored it
    (parent,) = sweeps_of(db, "search")
    assert parent.data.metrics["best/value"] == best["best_value"]
    assert parent.data.tags["best.trial"] == str(best["best_trial"])
    best_run = next(r for r in runs if r.info.run_id == parent.data.tags["best.run_id"])
    assert best_run.data.metrics["student/accuracy"] == best["best_value"]
    assert best_run.info.run_name.startswith(f"trial {best['best_trial']}: ")
    assert parent.data.tags["best.run_name"] == best_run.info.run_name
    assert "warning" not in parent.data.tags


def test_a_search_whose_trials_all_score_the_same_says_so(tmp_path):
    """The searched settings do not move the objective (here: how many test images the privacy
    measure samples): one warning line and a tag on the search's parent run."""
    db = tmp_path / "store.db"
    result = train(tmp_path, "-m", "hparams_search=student_accuracy", "dataset=digits",
                   "hydra.sweeper.n_trials=2", "trainer.teacher.epochs=2",
                   "extractor.l2=choice(0.5)", "extractor.steps=choice(100)",
                   "trainer.student.lr=choice(1.0)", "privacy.test_sample=choice(100,200)",
                   "trainer.student.steps=100", f"tracking.uri=sqlite:///{db}",
                   "tracking.experiment=flat", f"hydra.sweep.dir={tmp_path}/s")
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines()
               if line.startswith("classvis: warning: every one of the search's")]
    assert "2 complete trials scored" in line and "hydra.sweeper.params" in line
    (parent,) = sweeps_of(db, "flat")
    assert parent.data.tags["warning"] == line.removeprefix("classvis: warning: ")


def test_a_stored_study_is_continued_not_repeated_by_a_rerun(tmp_path):
    """A search killed before its n_trials (here: 3 done, one trial left RUNNING) and run again
    with its study in a database: the stale trial is marked FAIL, only the missing trials run,
    all with new parameters, and the sweep's parent run holds the study's results."""
    import optuna

    db, storage = tmp_path / "store.db", f"sqlite:///{tmp_path / 'optuna.db'}"
    common = ("-m", "hparams_search=student_accuracy", "dataset=digits", "trainer.teacher.epochs=2",
              "trainer.student.steps=300", f"hydra.sweeper.storage={storage}", f"tracking.uri=sqlite:///{db}",
              "tracking.experiment=study")
    first = train(tmp_path, *common, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={tmp_path}/a")
    assert first.returncode == 0, first.stderr[-3000:]
    study = optuna.load_study(study_name="classvis-student-accuracy", storage=storage)
    study.ask()  # what a killed sweep leaves behind: a trial that never reported
    second = train(tmp_path, *common, "hydra.sweeper.n_trials=5", f"hydra.sweep.dir={tmp_path}/b")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "3 trial(s) complete, 2 to run (n_trials=5)" in second.stdout + second.stderr
    # no trial drew the parameters of an earlier one
    assert "classvis: skipped" not in second.stdout
    trials = optuna.load_study(study_name="classvis-student-accuracy", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 + ["FAIL"] + ["COMPLETE"] * 2
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 5
    runs = runs_of(db, "study")
    assert sorted(r.data.metrics["student/accuracy"] for r in runs) == sorted(
        t.value for t in complete)
    results = yaml.safe_load((tmp_path / "b" / "optimization_results.yaml").read_text())
    assert results["complete"] == 5 and math.isclose(results["best_value"],
                                                     max(t.value for t in complete))
    assert (tmp_path / "b" / "optimization_history.png").stat().st_size > 10_000
    (parent,) = [p for p in sweeps_of(db, "study") if p.data.tags["sweep_dir"].endswith("/b")]
    assert "best_value:" in parent.data.tags["mlflow.note.content"]


def test_two_objectives_give_a_pareto_front(tmp_path):
    db = tmp_path / "store.db"
    result = train(tmp_path, "-m", "hparams_search=accuracy_vs_images", "dataset=digits",
                   "hydra.sweeper.n_trials=4", "trainer.teacher.epochs=2",
                   "trainer.student.steps=300",
                   f"tracking.uri=sqlite:///{db}", "tracking.experiment=front",
                   f"hydra.sweep.dir={tmp_path}/s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Pareto front (student/accuracy, synthetic/images):" in result.stdout + result.stderr
    front = yaml.safe_load((tmp_path / "s" / "optimization_results.yaml").read_text())[
        "pareto_front"]
    runs = runs_of(db, "front")
    assert front and len(runs) == 4
    for point in front:
        assert point["synthetic/images"] == 10 * point["params"]["extractor.per_class"]
        dominated = [r for r in runs
                     if r.data.metrics["student/accuracy"] > point["student/accuracy"]
                     and r.data.metrics["synthetic/images"] <= point["synthetic/images"]]
        assert not dominated  # nothing is both more accurate and no larger


def test_an_unwritable_study_storage_is_refused_before_any_trial(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = train(tmp_path, "-m", "hparams_search=student_accuracy", "dataset=digits",
                   f"hydra.sweeper.storage=sqlite:///{blocker}/optuna.db",
                   f"tracking.uri=sqlite:///{tmp_path / 'store.db'}",
                   f"hydra.sweep.dir={tmp_path}/s")
    assert result.returncode != 0
    assert "hydra.sweeper.storage: expected a writable database path" in result.stderr
    assert "Traceback" not in result.stderr
    assert "trial 0" not in result.stdout
