"""End to end: real ``python train.py`` runs and sweeps into a temporary SQLite MLflow store,
checked through ``MlflowClient`` the way a user's tools would read them."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, make_mnist, training_runs

from classvis.synthetic import SyntheticSet

pytestmark = pytest.mark.slow

ARTIFACTS = {"config.yaml", "confusion/teacher.png", "confusion/teacher.csv",
             "confusion/student.png", "confusion/student.csv", "visualizations.png",
             "f1_comparison.png", "synthetic_set.safetensors", "metrics/teacher_per_class.csv",
             "metrics/teacher_confidence_per_class.csv",
             "metrics/student_per_class.csv", "privacy/nearest_train.csv",
             "privacy/nearest_training_images.png"}


def train(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")}
    environment.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300)


def client_for(db: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")


def all_artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for entry in client.list_artifacts(run_id, path):
        found |= all_artifacts(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return found


def test_multirun_digits_and_mnist_lands_in_one_experiment(tmp_path):
    data_root = make_mnist(tmp_path / "data")
    result = train(tmp_path, "-m", "dataset=digits,mnist", "trainer.teacher.epochs=3",
                   f"hydra.sweep.dir={tmp_path}/sweep", "tracking.system_metrics=true",
                   "tracking.log_models=all", env={"CLASSVIS_DATA": str(data_root)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 jobs: 2 succeeded," in result.stdout
    # the default store: one SQLite file in the launch directory, whatever the job folders
    client = client_for(tmp_path / "mlflow.db")
    experiment = client.get_experiment_by_name("classvis")
    runs = training_runs(client, [experiment.experiment_id], order_by=["tags.dataset"])
    assert [run.info.status for run in runs] == ["FINISHED", "FINISHED"]
    # named by what the sweep varies first (the runs table shows a name's first characters)
    assert [run.info.run_name for run in runs] == [
        "dataset=digits | digits | linear -> class_vis -> linear | seed 0",
        "dataset=mnist | mnist | linear -> class_vis -> linear | seed 0"]
    assert [run.data.tags["mlflow.note.content"] for run in runs] == [
        "digits | linear -> class_vis -> linear | seed 0",
        "mnist | linear -> class_vis -> linear | seed 0"]
    for run, job in zip(runs, ("0", "1"), strict=True):
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        assert (tags["extractor"], tags["teacher"], tags["student"], tags["seed"]) == (
            "class_vis", "linear", "linear", "0")
        assert tags["hydra.job_num"] == job
        # the config-group options as the user chose them, Hydra's own groups left out
        assert {key: value for key, value in tags.items() if key.startswith("choice.")} == {
            "choice.dataset": tags["dataset"], "choice.teacher": "linear",
            "choice.student": "linear", "choice.extractor": "auto/linear",
            "choice.trainer": "paper", "choice.swap": "none", "choice.compress": "none",
            "choice.teacher_from": "train"}
        assert tags["hydra.overrides"].startswith(f"dataset={tags['dataset']}")
        assert params["trainer.teacher.lr"] == "0.5" and params["dataset.name"] == tags["dataset"]
        for model in ("teacher", "student", "untrained"):
            assert 0.0 <= metrics[f"{model}/accuracy"] <= 1.0
        # per-class scores are tables, not 60 metrics (tracking.per_class_metrics=true: both)
        assert not [key for key in metrics if key.count("/") == 2 and key.split("/")[1] in (
            "precision", "recall", "f1")]
        for model in ("teacher", "student"):
            table = client.download_artifacts(run.info.run_id, f"metrics/{model}_per_class.csv",
                                              str(tmp_path / run.info.run_id / model))
            rows = list(csv.DictReader(open(table)))
            assert [row["class"] for row in rows] == [str(digit) for digit in range(10)]
            assert all(0.0 <= float(row[m]) <= 1.0 for row in rows
                       for m in ("precision", "recall", "f1"))
        assert metrics["teacher/accuracy"] > 0.85
        assert abs(metrics["student/accuracy"] - metrics["teacher/accuracy"]) < 0.03
        assert 0.05 <= metrics["untrained/accuracy"] <= 0.15
        history = client.get_metric_history(run.info.run_id, "teacher/loss")
        assert [point.step for point in history] == [1, 2, 3]
        assert history[-1].value < history[0].value
        losses = client.get_metric_history(run.info.run_id, "student/loss")
        logs = client.get_metric_history(run.info.run_id, "student/log10_loss")
        assert len(losses) == len(logs) == 1000
        assert [point.value for point in logs[:3]] == pytest.approx(
            [math.log10(point.value) for point in losses[:3]])
        assert all_artifacts(client, run.info.run_id) == ARTIFACTS
        synthetic = SyntheticSet.load(client.download_artifacts(
            run.info.run_id, "synthetic_set.safetensors", str(tmp_path / run.info.run_id)))
        assert synthetic.labels.tolist() == list(range(10))
        assert synthetic.soft_targets.shape == (10, 10)
        assert synthetic.images.shape[0] == 10
        assert synthetic.metadata["dataset"] == tags["dataset"]
        # the machine while it ran, sampled by MLflow every second
        assert {"system/cpu_utilization_percentage",
                "system/system_memory_usage_megabytes"} <= set(metrics)
        # the datasets it used and made, as MLflow's Dataset column shows them
        inputs = {item.tags[0].value: item.dataset for item in run.inputs.dataset_inputs}
        assert sorted(inputs) == ["synthetic", "test", "training"]
        name = tags["dataset"]
        assert [inputs[c].name for c in ("training", "test", "synthetic")] == [
            f"{name}/train", f"{name}/test", f"{name}/synthetic"]
        rows = {c: json.loads(inputs[c].profile)["num_rows"] for c in inputs}
        assert rows["training"] > rows["test"] > rows["synthetic"] == 10
        assert len({inputs[c].digest for c in inputs}) == 3
        assert json.loads(inputs["synthetic"].source)["uri"].endswith(
            f"{run.info.run_id}/artifacts/synthetic_set.safetensors")
        if name == "mnist":
            assert inputs["training"].source_type == "local"
            assert json.loads(inputs["training"].source)["uri"] == str(
                (data_root / "MNIST").resolve())
        # privacy: class visualizations are not copies of training images
        assert metrics["privacy/distance_ratio"] > 1.0
        assert metrics["privacy/nn_distance_min"] > 0.0
    assert runs[0].data.metrics["student/accuracy"] > 0.85  # digits is learnable
    _logged_models_give_the_runs_numbers(client, runs[0], tmp_path)
    # one summary line per run, and no progress bars outside a terminal
    summaries = [line for line in result.stdout.splitlines()
                 if line.startswith("classvis: ") and "MLflow run" in line
                 and not line.startswith("classvis: sweep finished")]
    assert len(summaries) == 2 and all("teacher" in line and "student" in line and " in "
                                       in line for line in summaries)
    assert "step/s" not in result.stderr and "epoch/s" not in result.stderr
    assert "%|" not in result.stderr

    # the portable set: export the MNIST run, train a student from the file alone
    mnist = runs[1]
    exported = tmp_path / "exports" / "mnist.safetensors"
    done = subprocess.run([sys.executable, "-m", "classvis.cli", "export", mnist.info.run_id,
                           "-o", str(exported)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Downloading" not in done.stdout + done.stderr  # MLflow's bar stays quiet too
    portable = SyntheticSet.load(exported)
    assert exported.stat().st_mode & 0o044  # readable by others, as files one shares are
    missing = subprocess.run([sys.executable, "-m", "classvis.cli", "export", "0" * 32, "-o",
                              str(tmp_path / "none.safetensors")], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and not (tmp_path / "none.safetensors").exists()
    assert missing.stderr.strip().startswith("classvis export: error: RUN_ID: no run '000")
    assert "\n" not in missing.stderr.strip()
    original = SyntheticSet.load(client.download_artifacts(
        mnist.info.run_id, "synthetic_set.safetensors", str(tmp_path / "again")))
    assert torch.equal(portable.images, original.images)
    assert torch.equal(portable.soft_targets, original.soft_targets)
    assert portable.class_names == [str(d) for d in range(10)]
    meta = portable.metadata
    assert meta["run_id"] == mnist.info.run_id and meta["experiment"] == "classvis"
    assert float(meta["teacher_accuracy"]) == mnist.data.metrics["teacher/accuracy"]
    assert json.loads(meta["teacher_architecture"])["name"] == "linear"
    assert json.loads(meta["source_dataset"])["torchvision_class"] == "MNIST"
    assert int(meta["teacher_parameters"]) == 7850

    shutil.move(data_root, tmp_path / "elsewhere")  # the original data is gone
    alone = train(tmp_path, "dataset=synthetic", f"dataset.path={exported}",
                  "tracking.experiment=portable")
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "no real test set" in alone.stdout
    found = train(tmp_path, "dataset=synthetic", f"dataset.path={exported}",
                  f"dataset.test_root={tmp_path / 'elsewhere'}", "tracking.experiment=portable")
    assert found.returncode == 0, found.stderr[-3000:]
    portable_runs = training_runs(client,
        [client.get_experiment_by_name("portable").experiment_id], order_by=["start_time"])
    without, with_test = portable_runs
    assert without.data.tags["test_set"] == "unavailable"
    assert "student/accuracy" not in without.data.metrics
    assert without.data.metrics["student/synthetic_agreement"] == 1.0
    assert with_test.data.tags["test_set"] == "real"
    assert with_test.data.tags["synthetic_file.run_id"] == mnist.info.run_id
    assert (with_test.data.tags["dataset"], with_test.data.tags["teacher"]) == ("mnist", "linear")
    assert with_test.info.run_name == "mnist | linear -> class_vis [file] -> linear | seed 0"
    # same images, targets, student and seed: the very student of the original run
    assert with_test.data.metrics["student/accuracy"] == mnist.data.metrics["student/accuracy"]
    assert with_test.data.metrics["synthetic_file/teacher_accuracy"] == mnist.data.metrics[
        "teacher/accuracy"]


def _logged_models_give_the_runs_numbers(client, run, tmp_path: Path) -> None:
    """The run's student and teacher as MLflow models: loaded (from code, weights from
    safetensors) in a fresh process, they score the run's test set as the run did, and the
    student, registered, loads by its registered name."""
    import mlflow

    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'")
    # named by what they are; their metrics linked to them, with the dataset each was measured
    # on (the model's page in the UI shows both)
    assert sorted(model.name for model in models) == ["digits-linear-student",
                                                      "digits-linear-teacher"]
    for model in models:
        role = model.name.rsplit("-", 1)[1]
        linked = {metric.key: metric for metric in model.metrics}
        assert linked[f"{role}/accuracy"].value == run.data.metrics[f"{role}/accuracy"]
        assert linked[f"{role}/accuracy"].dataset_name == "digits/test"
        assert not [key for key in linked if key.startswith(("student/", "teacher/"))
                    and not key.startswith(f"{role}/")]
    student_metrics = {m.key: m for m in next(m for m in models if m.name.endswith(
        "student")).metrics}
    assert student_metrics["student/view_agreement"].dataset_name == "digits/synthetic"
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        accuracies = _checked_and_scored(models, client, run, tmp_path)
    finally:
        mlflow.set_tracking_uri(None)
    scored = json.loads(accuracies.splitlines()[-1])
    for name in ("student", "teacher"):
        assert scored[name] == pytest.approx(run.data.metrics[f"{name}/accuracy"], abs=1e-9)
    assert scored["registered"] == scored["student"]


def _checked_and_scored(models, client, run, tmp_path: Path) -> str:
    import mlflow

    for model in models:
        assert model.status == "READY"
        info = mlflow.models.get_model_info(model.model_uri)
        assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 1, 8, 8)
        assert not any(path.endswith((".pkl", ".pt", ".pth")) for path in all_artifacts(
            client, run.info.run_id)), "nothing pickled"
    student = next(model for model in models if model.name.endswith("-student"))
    assert mlflow.register_model(student.model_uri, "digits-student").version == 1
    accuracies = subprocess.run([sys.executable, "-c", SCORE_LOGGED_MODELS, client.tracking_uri,
                                 run.info.run_id], cwd=tmp_path, capture_output=True, text=True,
                                timeout=300)
    assert accuracies.returncode == 0, accuracies.stderr[-3000:]
    return accuracies.stdout


# loads each logged model of a run with mlflow.pyfunc, scores the digits test set with it
SCORE_LOGGED_MODELS = """
import json, sys
import mlflow
from classvis.data import load_dataset
from classvis.data import DatasetSettings
uri, run_id = sys.argv[1:]
mlflow.set_tracking_uri(uri)
run = mlflow.get_run(run_id)
data = load_dataset(DatasetSettings(name="digits", loader="digits"),
                    seed=int(run.data.params["seed"]))
scores = {}
for model in mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'",
                                         output_format="list"):
    logits = mlflow.pyfunc.load_model(model.model_uri).predict(data.test_x.numpy())
    scores[model.name.rsplit("-", 1)[1]] = float((logits.argmax(1) == data.test_y.numpy()).mean())
logits = mlflow.pyfunc.load_model("models:/digits-student/1").predict(data.test_x.numpy())
scores["registered"] = float((logits.argmax(1) == data.test_y.numpy()).mean())
print(json.dumps(scores))
"""


def test_invalid_value_is_one_line_and_records_nothing(tmp_path):
    result = train(tmp_path, "dataset=digits", "trainer.teacher.lr=-1")
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if "classvis" in line]
    assert error_lines == ["classvis: error: invalid config: trainer.teacher.lr: expected a "
                           "number > 0, got -1.0"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_unknown_group_option_lists_the_choices(tmp_path):
    result = train(tmp_path, "extractor=deep_dream")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "classvis: error: invalid config: extractor: expected one of class_average, class_vis, "
        "deep_vis, deep_vis_bn, output_weights, real_subset, got 'deep_dream'")


def _broken_image(root: Path) -> list[str]:
    from conftest import make_image_folder

    make_image_folder(root)
    (root / "train" / "dog" / "002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return ["dataset=image_folder", f"dataset.root={root}"]


def _bomb(root: Path) -> list[str]:
    from conftest import bomb_png, make_image_folder

    make_image_folder(root)
    bomb_png(root / "test" / "frog" / "001.png")
    return ["dataset=image_folder", f"dataset.root={root}"]


def _empty_class(root: Path) -> list[str]:
    from conftest import make_image_folder

    make_image_folder(root)
    for image in (root / "test" / "frog").iterdir():
        image.unlink()
    return ["dataset=image_folder", f"dataset.root={root}"]


@pytest.mark.parametrize("make,line", [
    (_broken_image, "classvis: error: invalid input: dataset.root: expected readable images, "
                    "got '{root}/train/dog/002.png (cannot identify image file"),
    (_bomb, "classvis: error: invalid input: dataset.root: expected readable images, "
            "got '{root}/test/frog/001.png (Image size (180000000 pixels) exceeds limit of"),
    (_empty_class, "classvis: error: invalid config: dataset.root: expected at least one image "
                   "in every class folder, got 'an empty test/frog/ in {root}'"),
    (lambda root: ["dataset=digits", "extractor=real_subset", "extractor.per_class=1000"],
     "classvis: error: invalid input: extractor.per_class: expected at most 13"),
])
def test_bad_data_is_one_line_before_any_run_is_recorded(tmp_path, make, line):
    root = tmp_path / "folder"
    result = train(tmp_path, *make(root), "teacher_cache.enabled=false")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [text for text in result.stderr.splitlines() if text.startswith("classvis")]
    assert len(errors) == 1 and errors[0].startswith(line.format(root=root)), errors
    assert "Traceback" not in result.stderr
    if (tmp_path / "mlflow.db").exists():
        client = client_for(tmp_path / "mlflow.db")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


# train.py with the artifact store's file copies failing as a full or read-only disk fails them
WITH_A_FAILING_DISK = """
import errno, runpy, shutil, sys
failure, which = sys.argv.pop(1), sys.argv.pop(1)
real_copyfile = shutil.copyfile

def copyfile(source, target, *args, **kwargs):
    if "mlartifacts" in str(target) and which in str(target):
        code = errno.ENOSPC if failure == "full" else errno.EROFS
        raise OSError(code, "No space left on device" if failure == "full"
                      else "Read-only file system", str(target))
    return real_copyfile(source, target, *args, **kwargs)

shutil.copyfile = copyfile
sys.argv[0] = sys.argv[1]
del sys.argv[1]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("failure,which,reason", [
    ("full", "synthetic_set.safetensors", "OSError: [Errno 28] No space left on device"),
    ("readonly", "", "OSError: [Errno 30] Read-only file system"),
])
def test_a_full_or_read_only_disk_fails_the_run_with_the_reason(tmp_path, failure, which,
                                                                  reason):
    result = subprocess.run(
        [sys.executable, "-c", WITH_A_FAILING_DISK, failure, which, str(ROOT / "train.py"),
         "dataset=digits", "trainer.teacher.epochs=2", "trainer.student.steps=100",
         "privacy.enabled=false", "tracking.log_models=none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")})
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("classvis")]
    assert len(errors) == 1 and errors[0].startswith(f"classvis: error: {reason}"), errors
    assert "Traceback" not in result.stderr
    client = client_for(tmp_path / "mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("classvis").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith(reason)
    assert "student/accuracy" not in run.data.metrics  # nothing reported as done
    exported = subprocess.run([sys.executable, "-m", "classvis.cli", "export", run.info.run_id,
                               "-o", str(tmp_path / "set.safetensors")], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert exported.returncode == 2 and "is FAILED, not FINISHED" in exported.stderr
    assert not (tmp_path / "set.safetensors").exists()
