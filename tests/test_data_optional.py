"""A given teacher needs no training set: a run with the test split alone (``dataset.splits``,
or ``auto`` finding no training files) makes the same synthetic set and student as with the
full dataset and skips the privacy measure, saying why; ``dataset=none`` runs without a single
real image and reports the student's agreement with the teacher instead of test accuracy. What
needs real training images is refused at the door in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import mlflow
import pytest
import torch
from conftest import ROOT, make_image_folder, make_mnist, training_runs
from safetensors.torch import save_file
from test_config import settings_for

from classvis import pipeline
from classvis.validation import ConfigError

FAST = ["trainer.student.steps=60", "device=cpu", "extractor=class_vis",
        "teacher_cache.enabled=false",
        "trainer.teacher.epochs=2"]


@pytest.fixture(scope="module")
def given(tmp_path_factory):
    """Generated MNIST files (full, and a copy without its training files), a linear teacher
    trained on the full set with its weights saved, and the run with those weights."""
    folder = tmp_path_factory.mktemp("optional")
    full = make_mnist(folder / "full", train=300, test=100)
    test_only = folder / "test_only"
    shutil.copytree(full, test_only)
    for path in (test_only / "MNIST" / "raw").glob("train-*"):
        path.unlink()
    trained = pipeline.run(settings_for(*FAST, f"dataset.root={full}", "dataset.download=false"))
    weights = folder / "linear.safetensors"
    save_file({key: value.contiguous() for key, value in trained.teacher.state_dict().items()},
              str(weights))
    return folder, full, test_only, weights


def with_weights(root, weights, *overrides: str):
    return settings_for(*FAST, f"dataset.root={root}", "dataset.download=false",
                        "teacher_from=weights", f"teacher_from.path={weights}", *overrides)


def test_a_test_split_alone_gives_the_full_datasets_student_and_skips_privacy(given):
    folder, full, test_only, weights = given
    everything = with_weights(full, weights)
    assert everything.dataset.splits == "train_and_test"  # auto: the training files are there
    alone = with_weights(test_only, weights)
    assert alone.dataset.splits == "test" and alone.real_splits == ("test",)
    a, b = pipeline.run(everything), pipeline.run(alone)
    assert len(b.data.train_x) == 0 and len(b.data.test_x) == len(a.data.test_x) == 100
    assert torch.equal(a.synthetic.images, b.synthetic.images)
    for name in ("teacher", "student"):
        assert b.evaluations[name].accuracy == a.evaluations[name].accuracy
    assert a.privacy is not None and a.privacy_skipped is None
    assert b.privacy is None and "no training split" in b.privacy_skipped
    # asked for, the test split alone though the training files are there (and cached apart)
    asked = with_weights(full, weights, "dataset.splits=test")
    c = pipeline.run(asked)
    assert len(c.data.train_x) == 0 and c.data.fingerprint != a.data.fingerprint
    assert c.evaluations["student"].accuracy == b.evaluations["student"].accuracy
    assert b.agreement is not None and 0 <= b.agreement.views <= 1


def test_an_image_folder_with_test_alone_serves_a_given_teacher(tmp_path):
    root = make_image_folder(tmp_path / "folder")
    shutil.rmtree(root / "train")
    from user_networks import AnyShape

    save_file(AnyShape(channels=3, num_classes=3).state_dict(), str(tmp_path / "net.safetensors"))
    settings = settings_for(
        *FAST, "dataset=image_folder", f"dataset.root={root}", "teacher_from=module",
        "teacher.network._target_=user_networks.AnyShape", "+teacher.network.channels=3",
        "+teacher.network.num_classes=3", "teacher.channels=3", "teacher.height=12",
        "teacher.width=12", "teacher.mean=[0.5]", "teacher.std=[0.25]",
        f"teacher_from.path={tmp_path / 'net.safetensors'}", "extractor=deep_vis",
        "extractor.steps=5", "extractor.per_class=2")
    assert settings.dataset.splits == "test"
    result = pipeline.run(settings)
    assert result.class_names == ["cat", "dog", "frog"] and result.privacy is None
    assert len(result.synthetic.images) == 6 and "student" in result.evaluations
    with pytest.raises(ConfigError, match=r"^dataset\.root: expected image_folder's training "
                                          r"split \(the teacher is trained on it"):
        settings_for(*FAST, "dataset=image_folder", f"dataset.root={root}")


def test_no_dataset_takes_the_shape_and_classes_the_teacher_declares(given):
    folder, full, test_only, weights = given
    alone = pipeline.run(with_weights(test_only, weights))
    none = ["dataset=none", "teacher_from=weights", f"teacher_from.path={weights}", *FAST]
    with pytest.raises(ConfigError, match=r"^dataset\.image_shape: expected \[channels, height, "
                                          r"width\] of the images with dataset=none "
                                          r"\(architecture@teacher=linear does not declare"):
        settings_for(*none)
    settings = settings_for(*none, "dataset.image_shape=[1,28,28]")
    assert settings.dataset.class_names == tuple(str(c) for c in range(10))  # its last layer
    assert settings.real_splits == ()
    result = pipeline.run(settings)
    assert result.evaluations == {} and result.privacy is None
    assert result.test_unavailable.startswith("dataset=none")
    assert torch.equal(result.synthetic.images, alone.synthetic.images)
    for key, value in result.student.state_dict().items():  # the same student, unmeasured
        assert torch.equal(value, alone.student.state_dict()[key])
    agreed = result.agreement
    assert agreed.synthetic == alone.agreement.synthetic and len(agreed.confidence) == 10
    assert ((agreed.confidence > 0) & (agreed.confidence <= 1)).all()


def test_dataset_classes_pick_a_given_teachers_classes(given):
    """A given teacher scores every class it was trained on; ``dataset.classes`` keeps the
    scores of the chosen ones, in their order, and the run is of those classes."""
    folder, full, test_only, weights = given
    settings = with_weights(test_only, weights, "dataset.classes=[7,2,5]")
    assert settings.teacher_outputs == (7, 2, 5)
    result = pipeline.run(settings)
    assert result.class_names == ["7", "2", "5"] and result.synthetic.soft_targets.shape[1] == 3
    whole = pipeline.run(with_weights(test_only, weights)).teacher
    images = result.synthetic.images
    with torch.no_grad():
        torch.testing.assert_close(result.teacher(images), whole(images)[:, [7, 2, 5]])
    assert set(result.data.test_y.tolist()) <= {0, 1, 2}
    assert 0 < result.evaluations["teacher"].accuracy <= 1


@pytest.mark.parametrize("overrides,message", [
    (["dataset.splits=test"], "dataset.splits: expected train_and_test or auto with "
                              "teacher_from=train"),
    (["dataset=none"], "teacher_from: expected weights, module, mlflow or torchvision with "
                       "dataset=none"),
    (["@weights", "dataset.splits=test", "extractor=real_subset"],
     "extractor: expected an extractor that needs no real images without a training split "
     "(dataset.splits=test) (real_subset reads real training images)"),
    (["@weights", "dataset.splits=test", "extractor=class_average"],
     "extractor: expected an extractor that needs no real images"),
    (["@weights", "dataset.splits=test", "compress=biases"],
     "compress: expected none without a training split"),
    (["@weights", "dataset=none", "dataset.image_shape=[1,28,28]", "compress=biases"],
     "compress: expected none with dataset=none"),
    (["@weights", "dataset=none", "dataset.image_shape=[1,8,8]"],
     "teacher_from.path: expected weights that fit architecture@teacher=linear for images of "
     "1x8x8 with some class count"),
    (["@weights", "dataset=none", "dataset.image_shape=[0,28,28]"],
     "dataset.image_shape: expected [channels, height, width], each >= 1"),
    (["+dataset.image_shape=[1,28,28]"], "dataset.image_shape: expected null unless "
                                         "dataset=none"),
])
def test_what_needs_training_images_is_refused_at_the_door(given, overrides, message):
    folder, full, test_only, weights = given
    chosen = [f"dataset.root={full}", "dataset.download=false"]
    if overrides[0] == "@weights":
        chosen += ["teacher_from=weights", f"teacher_from.path={weights}"]
        overrides = overrides[1:]
    if any(item.startswith("dataset=none") for item in overrides):
        chosen = chosen[2:]
    with pytest.raises(ConfigError) as refused:
        settings_for(*FAST, *chosen, *overrides)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_train_py_without_data_logs_agreement_and_says_privacy_was_skipped(tmp_path):
    """Through the command line: a network of your code with no dataset at all, into a SQLite
    store; the run says what it could not measure and why, in its summary line and its tags."""
    from user_networks import AnyShape

    save_file(AnyShape().state_dict(), str(tmp_path / "net.safetensors"))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "dataset=none", "teacher_from=module",
         "teacher.network._target_=user_networks.AnyShape", "teacher.height=12",
         "teacher.width=12", f"teacher_from.path={tmp_path / 'net.safetensors'}",
         "extractor.steps=5", "extractor.per_class=2", "trainer.student.steps=20", "device=cpu",
         "tracking.per_class_metrics=true", f"tracking.uri={store}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "tests")})
    assert done.returncode == 0, done.stderr
    line = next(text for text in done.stdout.splitlines() if text.startswith("classvis: none"))
    assert "no real test set (dataset=none: no real images)" in line
    assert "held-out synthetic views" in line
    assert "privacy skipped (no training images to measure against (dataset=none))" in line
    client = mlflow.MlflowClient(store)
    (run,) = training_runs(client, [client.get_experiment_by_name("classvis").experiment_id])
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["test_set"] == "unavailable" and tags["training_set"] == "none"
    assert tags["privacy_skipped"].startswith("no training images")
    assert json.loads(tags["classvis.class_names"]) == [str(c) for c in range(10)]
    assert "student/accuracy" not in metrics
    assert {"student/synthetic_agreement", "student/view_agreement",
            "teacher/synthetic_confidence", "teacher/synthetic_confidence/0"} <= set(metrics)
    assert run.data.params["dataset.image_shape"] == "[1, 12, 12]"
