"""Defaults follow the architectures a run trains (conf/recipe/, conf/extractor/auto/), an
explicit value always wins, a weak combination says so, and what a user mistypes or lacks is
refused in one line before anything is written."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from test_config import settings_for

from classvis.commandline import check_group_choices
from classvis.validation import ConfigError

DIGITS = "dataset=digits"


def test_a_hidden_layer_student_gets_the_deeper_students_recipe():
    student = settings_for(DIGITS, "architecture@student=mlp").trainer.student
    assert (student.optimizer, student.lr, student.steps, student.mixup, student.hidden_init) \
        == ("sgd", 0.1, 3000, 100, "span")
    linear = settings_for(DIGITS).trainer.student
    assert (linear.lr, linear.steps, linear.mixup, linear.hidden_init) == (1.0, 1000, 0, "model")


@pytest.mark.parametrize("architecture", ["lenet5", "convnet", "resnet18"])
def test_a_convolutional_teacher_and_student_get_the_cnn_recipes(architecture, mnist_root):
    settings = settings_for("dataset=mnist", f"data_root={mnist_root}",
                            f"architecture@teacher={architecture}",
                            f"architecture@student={architecture}")
    teacher, student = settings.trainer.teacher, settings.trainer.student
    assert (teacher.optimizer, teacher.lr, teacher.momentum, teacher.schedule) == \
        ("sgd", 0.05, 0.9, "cosine")
    assert (student.optimizer, student.lr_scaling, student.batch_size) == ("adam", "none", 100)
    assert student.augment == ("shift", "scale", "rotate")
    assert student.augment_targets == "teacher"  # resolved from auto: the run has a teacher
    extractor = settings.extractor
    assert settings.extractor_name == "class_vis" and extractor.target == "log_prob"
    assert extractor.per_class == 10 and extractor.clip and extractor.jitter == 2
    assert extractor.bn == (0.01 if architecture == "resnet18" else 0.0)  # BatchNorm: its prior
    assert settings.caveat == ""


def test_a_hidden_layer_teacher_gets_many_spread_images():
    settings = settings_for(DIGITS, "architecture@teacher=mlp")
    extractor = settings.extractor
    assert (extractor.per_class, extractor.start_std, extractor.diversity) == (100, 0.3, 100)
    assert settings.trainer.teacher.lr == 0.5  # a dense teacher keeps the paper's recipe


def test_an_explicit_value_or_choice_wins_over_the_architectures_default(mnist_root):
    student = settings_for(DIGITS, "architecture@student=mlp", "trainer.student.lr=0.3",
                           "trainer.student.mixup=0").trainer.student
    assert (student.lr, student.mixup, student.steps) == (0.3, 0, 3000)
    paper = settings_for("dataset=mnist", f"data_root={mnist_root}",
                         "architecture@teacher=lenet5", "extractor=class_vis")
    assert (paper.extractor.per_class, paper.extractor.target) == (1, "score")
    assert settings_for(DIGITS, "architecture@teacher=mlp",
                        "extractor.per_class=7").extractor.per_class == 7


def test_a_student_from_a_file_keeps_the_files_targets_for_its_views(tmp_path):
    from classvis.synthetic import SyntheticSet

    path = tmp_path / "set.safetensors"
    SyntheticSet(images=torch.rand(4, 1, 12, 12), soft_targets=torch.randn(4, 2),
                 labels=torch.tensor([0, 1, 0, 1]), class_names=["a", "b"],
                 metadata={"dataset": "toy", "teacher": "linear"}).save(path)
    settings = settings_for("dataset=synthetic", f"dataset.path={path}",
                            "architecture@student=lenet5")
    assert settings.trainer.student.augment == ("shift", "scale", "rotate")
    assert settings.trainer.student.augment_targets == "keep"


@pytest.mark.parametrize("overrides,advice", [
    (["architecture@teacher=lenet5", "extractor=class_vis"], "use extractor=deep_vis"),
    (["architecture@teacher=mlp", "extractor=class_vis"], "set extractor.per_class=100"),
    (["architecture@teacher=lenet5", "extractor=deep_vis"], "set extractor.per_class=10"),
    (["architecture@teacher=mlp"], "(architecture@student=lenet5) reached 92.7% from an MLP "
                                   "teacher, 97.8% from a LeNet-5"),
    (["architecture@teacher=lenet5", "architecture@student=mlp"], "97.8% from a LeNet-5"),
])
def test_a_combination_weak_by_nature_names_the_setting_to_change(overrides, advice,
                                                                  mnist_root):
    caveat = settings_for("dataset=mnist", f"data_root={mnist_root}", *overrides).caveat
    assert caveat.endswith(advice) and "\n" not in caveat
    assert settings_for(DIGITS).caveat == ""
    assert settings_for("dataset=mnist", f"data_root={mnist_root}", "architecture@teacher=mlp",
                        "architecture@student=lenet5").caveat == ""


@pytest.mark.parametrize("teacher,student,weak", [
    ("linear", "linear", False), ("linear", "mlp", False), ("linear", "lenet5", True),
    ("mlp", "linear", True), ("lenet5", "lenet5", True), ("lenet5", "mlp", True),
])
def test_cifar10_at_the_defaults_says_its_students_are_weak_and_names_the_preset(
        teacher, student, weak, tmp_path):
    # measured (docs/results.md, the matrix): 16-39% students on CIFAR-10 wherever the teacher
    # has hidden layers or the student convolutions; the linear pair keeps its teacher's 40.8%
    from conftest import make_image_folder

    root = make_image_folder(tmp_path / "cifar10-jpg")
    caveat = settings_for("dataset=cifar10_jpg", f"dataset.root={root}",
                          f"architecture@teacher={teacher}",
                          f"architecture@student={student}").caveat
    assert caveat.endswith("+experiment=deep_cifar10 is the recipe sized for it (a GPU)") == weak
    assert "\n" not in caveat


@pytest.mark.parametrize("arguments,message", [
    (["dataset=nonexistent"], "dataset: expected one of cifar10, cifar10_jpg, digits, fmnist, "
                              "image_folder, mnist, none, synthetic, got 'nonexistent'"),
    (["architecture@teacher=vgg"], "architecture@teacher: expected one of convnet, lenet5, "
                                   "linear, mlp, module, resnet18, torchvision, got 'vgg'"),
    (["-m", "dataset=digits,mnst"], "dataset: expected one of"),
    (["+experiment=tabl5"], "experiment: expected one of deep, deep_cifar10, section10"),
])
def test_an_unknown_option_of_a_config_group_is_one_line_and_exit_2(tmp_path, arguments,
                                                                    message):
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *arguments], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("classvis: error: invalid config: ") and message in line
    assert list(tmp_path.iterdir()) == []  # no store, no outputs/


def test_patterns_and_nested_options_are_left_to_hydra():
    conf = ROOT / "conf"
    check_group_choices(["-m", "extractor=glob(*)", "seed=range(0,3)", "extractor=auto/lenet5",
                         "trainer.student.lr=0.1", "hydra/launcher=joblib", "~swap"], conf)
    with pytest.raises(ConfigError, match=r"^extractor: expected one of class_average, class_vis"):
        check_group_choices(["extractor=choice(class_vis,deepvis)"], conf)


def test_missing_torchvision_files_say_what_was_tried_and_the_ways_out(tmp_path, monkeypatch):
    import torchvision

    root = tmp_path / "nothing"
    (root / "cifar10-jpg" / "train").mkdir(parents=True)
    with pytest.raises(ConfigError) as refused:
        settings_for("dataset=cifar10", f"dataset.root={root}", "dataset.download=false")
    message = str(refused.value)
    assert message.startswith(f"dataset.root: expected torchvision's CIFAR10 files in "
                              f"{root / 'cifar-10-batches-py'} (none there, and "
                              f"dataset.download=false); ways out: dataset=cifar10_jpg")
    assert "CLASSVIS_DATA=<a folder holding cifar-10-batches-py/>" in message
    assert "dataset=digits" in message and "\n" not in message

    def offline(*args, **kwargs):
        import urllib.error
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    empty = tmp_path / "empty"
    with pytest.raises(ConfigError, match=r"downloading them failed: <urlopen error \[Errno -2\]"
                                          r".*CLASSVIS_DATA=<a folder holding MNIST/raw/>"):
        settings_for("dataset=mnist", f"dataset.root={empty}")
    assert not empty.exists()  # the failed download left no folder


def test_a_jobs_traceback_goes_to_its_log_file_only(tmp_path, capsys):
    from classvis.app import _traceback_to_log_file

    handler = logging.FileHandler(tmp_path / "job.log")
    logging.getLogger().addHandler(handler)
    try:
        try:
            raise ValueError("a bug")
        except ValueError:
            where = _traceback_to_log_file()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert where == str(tmp_path / "job.log")
    written = (tmp_path / "job.log").read_text()
    assert "Traceback" in written and "ValueError: a bug" in written
    assert capsys.readouterr().err == ""


def test_a_sweep_checks_every_jobs_data_before_its_first_job(tmp_path):
    """A sweep over three datasets does not run one and then fail on the others' missing files:
    one line per missing dataset, exit 2, nothing run or written."""
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m",
                           "dataset=digits,mnist,fmnist", "seed=0,1", "dataset.download=false",
                           f"data_root={tmp_path / 'none'}"], cwd=work, env=_offline_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert [line.split("): ")[0] for line in lines[:2]] == [
        f"classvis: error (job 2: dataset=mnist seed=0 dataset.download=False "
        f"data_root={tmp_path / 'none'} and 1 more job",
        f"classvis: error (job 4: dataset=fmnist seed=0 dataset.download=False "
        f"data_root={tmp_path / 'none'} and 1 more job"]
    assert "invalid config: dataset.root: expected torchvision's MNIST files" in lines[0]
    assert "ways out: CLASSVIS_DATA=<a folder holding MNIST/raw/>" in lines[0]
    assert lines[2:] == ["classvis: error: the sweep's data is missing (see above); no job ran"]
    assert list(work.iterdir()) == []  # no store, no multirun/ folder, no digits run


def _offline_env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items()
            if key not in ("CLASSVIS_DATA", "CLASSVIS_CACHE", "MLFLOW_TRACKING_URI")}
