"""What a sweep's parent run says of its result (issue: the MLflow UI gives the answer): configs
ranked best first in the words their runs' names start with, each config's means and the best
config's values as the parent's metrics, and the names that tell a sweep's jobs apart."""

from __future__ import annotations

import pytest

from classvis.naming import override_words, short_override, varying_words
from classvis.report.runs import RunRecord
from classvis.report.sweep import (
    best_config,
    best_run,
    config_results,
    headline_of,
    parent_metrics,
    sweep_table,
)

TABLE5 = "+experiment=table5 progress=False"


def run(run_id: str, overrides: str, seed: int, student: float | None, teacher: float = 0.92,
        start: int = 0) -> RunRecord:
    metrics = {"teacher/accuracy": teacher, "time/total": 2.0}
    if student is not None:
        metrics["student/accuracy"] = student
    return RunRecord(run_id, start, {"hydra.overrides": f"{overrides} seed={seed}",
                                     "seed": str(seed)}, metrics)


def table5_runs() -> list[RunRecord]:
    """Two datasets x two extractors x two seeds, in the order a sweep runs them."""
    runs = []
    values = {("mnist", "class_vis"): (0.92, 0.90), ("mnist", "avg_images"): (0.83, 0.81),
              ("fmnist", "class_vis"): (0.845, 0.843), ("fmnist", "avg_images"): (0.75, 0.76)}
    for index, ((dataset, extractor), accuracies) in enumerate(values.items()):
        for seed, accuracy in enumerate(accuracies):
            runs.append(run(f"{dataset}-{extractor}-{seed}", f"dataset={dataset} "
                            f"+experiment/table5={extractor} {TABLE5}", seed, accuracy,
                            start=2 * index + seed))
    return runs


def test_configs_rank_best_first_in_the_words_their_run_names_start_with():
    results, shared = config_results(table5_runs())
    assert [r.label for r in results] == [
        "dataset=mnist table5=class_vis", "dataset=fmnist table5=class_vis",
        "dataset=mnist table5=avg_images", "dataset=fmnist table5=avg_images"]
    assert shared == ["+experiment=table5", "progress=False"]
    assert results[0].mean("student/accuracy") == pytest.approx(0.91)
    assert results[0].sd("student/accuracy") == pytest.approx(0.01414, abs=1e-5)
    # the job's run name starts with the same words (the sweep varies dataset, preset axis, seed)
    job = "dataset=mnist +experiment/table5=class_vis +experiment=table5 progress=False seed=1"
    assert varying_words(job.split(), ["dataset", "experiment/table5", "seed"]) == (
        "dataset=mnist table5=class_vis seed=1")


def test_the_table_is_sorted_rounded_and_marks_the_best_row():
    section = sweep_table(table5_runs())
    labels = [row[0] for row in section.rows]
    assert labels[0] == "**dataset=mnist table5=class_vis** (best)"
    assert labels[1:] == ["dataset=fmnist table5=class_vis", "dataset=mnist table5=avg_images",
                          "dataset=fmnist table5=avg_images"]
    student = section.header.index("Student (%)")
    assert [row[student] for row in section.rows] == [
        "91.00 ± 1.41", "84.40 ± 0.14", "82.00 ± 1.41", "75.50 ± 0.71"]
    assert section.notes == ["Every run: experiment=table5"]  # not where results go


def test_the_parent_carries_each_configs_means_and_the_best_configs_values():
    runs = table5_runs()
    results, _ = config_results(runs)
    headline = headline_of(runs)
    assert headline == "student/accuracy"
    metrics = parent_metrics(results, headline)
    # the folded sweep shows its best config's student accuracy in the runs table's column
    assert metrics["student/accuracy"] == metrics["best/student/accuracy"] == pytest.approx(0.91)
    assert metrics["best/student/accuracy_sd"] == pytest.approx(0.01414, abs=1e-5)
    assert metrics["best/teacher/accuracy"] == pytest.approx(0.92)
    assert metrics["config/dataset_mnist table5_avg_images/student/accuracy"] == pytest.approx(0.82)
    assert metrics["config/dataset_fmnist table5_class_vis/student/accuracy_sd"] == (
        pytest.approx(0.001414, abs=1e-6))
    assert len([key for key in metrics if key.startswith("config/")]) == 4 * 4  # mean, sd x 2
    best = best_config(results, headline)
    assert best is not None and best_run(best, headline).run_id == "mnist-class_vis-0"


def test_runs_without_a_test_set_rank_by_agreement_and_a_failed_config_goes_last():
    runs = [run("a", "extractor.l2=0.5", 0, None), run("b", "extractor.l2=5", 0, None),
            run("c", "extractor.l2=50", 0, None)]
    runs[0].metrics["student/view_agreement"] = 0.8
    runs[1].metrics["student/view_agreement"] = 0.9
    results, _ = config_results(runs)
    assert headline_of(runs) == "student/view_agreement"
    assert [r.label for r in results] == ["extractor.l2=5", "extractor.l2=0.5", "extractor.l2=50"]
    assert parent_metrics(results, "student/view_agreement")["best/student/view_agreement"] == 0.9


def test_a_sweep_of_one_config_is_its_own_best():
    runs = [run(f"r{seed}", TABLE5, seed, 0.9 + seed / 100) for seed in range(3)]
    section = sweep_table(runs)
    assert [row[0] for row in section.rows] == ["**(every run)** (best)"]
    assert section.rows[0][1] == "3"


@pytest.mark.parametrize(("override", "words"), [
    ("+experiment/table5=class_vis", "table5=class_vis"),
    ("architecture@student=mlp", "student=mlp"),
    ("extractor.l2=0.052341893458", "extractor.l2=0.05234"),
    ("trainer.student.lr=0.5", "trainer.student.lr=0.5"),
    ("seed=3", "seed=3"),
    ("dataset.classes=[3,4]", "dataset.classes=[3,4]"),
])
def test_an_override_is_named_by_its_last_key_segment_and_a_short_value(override, words):
    assert short_override(override) == words
    assert override_words([override, "seed=1"]) == f"{words} seed=1"


def test_a_new_experiment_opens_on_its_runs_and_an_older_one_is_given_the_kind(tmp_path):
    """MLflow 3's UI opens an experiment on traces unless its kind says model training."""
    import mlflow

    from classvis.track.connect import EXPERIMENT_KIND, MODEL_TRAINING, connect
    from classvis.track.settings import TrackingSettings

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    older = client.create_experiment("older")  # as classvis before this change, or by hand
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND: "genai_development"})
    for name in ("new", "older", "chosen"):
        connect(TrackingSettings(uri, name))
    kinds = {name: client.get_experiment_by_name(name).tags.get(EXPERIMENT_KIND)
             for name in ("new", "older", "chosen")}
    assert kinds == {"new": MODEL_TRAINING, "older": MODEL_TRAINING,
                     "chosen": "genai_development"}  # a kind the user set is left alone
    assert {older, chosen} <= {e.experiment_id for e in client.search_experiments()}


def test_an_ended_run_keeps_no_process_tags_and_an_older_run_is_still_resumed(tmp_path,
                                                                             monkeypatch, capsys):
    """Bookkeeping tags live under ``classvis.``; the process's are gone once the run ends. A run
    recorded before the rename (``config_digest``) still counts as its config's FINISHED run."""
    import mlflow
    from test_config import settings_for

    from classvis import runkeys as keys
    from classvis.job import Job
    from classvis.resume import skip_if_finished
    from classvis.track.connect import connect
    from classvis.track.runs import tracked_run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    settings = settings_for("dataset=digits", f"tracking.uri={uri}", "tracking.experiment=tags",
                            base_dir=tmp_path)
    experiment = connect(settings.tracking)
    with tracked_run("ended", {keys.CONFIG_DIGEST: "new"}) as run:
        during = mlflow.MlflowClient().get_run(run.run_id).data.tags
    after = mlflow.MlflowClient().get_run(run.run_id).data.tags
    assert set(keys.LIVENESS) <= set(during)
    assert not set(keys.LIVENESS) & set(after) and after[keys.CONFIG_DIGEST] == "new"
    older = mlflow.MlflowClient().create_run(experiment, tags={"config_digest": "old"})
    mlflow.MlflowClient().log_metric(older.info.run_id, "student/accuracy", 0.9)
    mlflow.MlflowClient().set_terminated(older.info.run_id, "FINISHED")
    job = Job(False, None, "", tmp_path, None)
    assert skip_if_finished(experiment, "old", settings, job) == {"student/accuracy": 0.9}
    assert f"already FINISHED as MLflow run {older.info.run_id}" in capsys.readouterr().out
    assert skip_if_finished(experiment, "other", settings, job) is None


def test_params_are_the_config_the_run_used(tmp_path, monkeypatch):
    """No operational keys, no keys of stages that did not run, no priors switched off, no
    unset values; the full config stays in config.yaml."""
    from omegaconf import OmegaConf
    from test_config import ROOT

    from classvis.runparams import used_params

    def params(*overrides: str) -> dict[str, str]:
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
        return used_params(OmegaConf.to_container(cfg, resolve=True))

    default = params("dataset=digits")
    assert not [key for key in default if key.startswith(
        ("tracking.", "teacher_cache.", "compress.", "swap.")) or key in (
        "progress", "force", "data_root")]
    assert not {"extractor.blur", "extractor.blur_every", "extractor.bn", "extractor.tv",
                "trainer.student.mixup_alpha", "dataset.classes"} & set(default)
    assert default["extractor.l2"] == "0.5" and default["trainer.teacher.lr"] == "0.5"
    assert default["privacy.enabled"] == "True" and "seed" in default
    assert len(default) < 60
    deep = params("dataset=digits", "extractor=deep_vis", "compress=biases",
                  "trainer.student.mixup=50", "privacy.enabled=false")
    assert {"extractor.jitter", "extractor.tv", "extractor.clip", "compress.lr",
            "trainer.student.mixup_alpha"} <= set(deep)
    assert not {"extractor.blur", "extractor.blur_every", "extractor.flip"} & set(deep)
    assert "privacy.test_sample" not in deep and deep["privacy.enabled"] == "False"
    given = params("dataset=digits", "teacher_from=weights", f"teacher_from.path={tmp_path}/w.pt")
    assert not [key for key in given if key.startswith("trainer.teacher.")]
    assert given["teacher_from.path"] == f"{tmp_path}/w.pt"
