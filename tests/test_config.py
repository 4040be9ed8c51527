"""The composed Hydra config is validated at the door, with one-line errors naming the key."""

from __future__ import annotations

import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir

from classvis.from_config import run_settings
from classvis.validation import ConfigError


def settings_for(*overrides: str, base_dir=None):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return run_settings(cfg, base_dir)


def test_defaults_are_the_papers_protocol(mnist_root, monkeypatch):
    monkeypatch.setenv("CLASSVIS_DATA", str(mnist_root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = settings_for(base_dir=mnist_root)
    assert settings.dataset.name == "mnist" and settings.dataset.root == str(mnist_root)
    assert settings.teacher.name == settings.student.name == "linear"
    assert settings.teacher.init == "zeros"
    teacher = settings.trainer.teacher
    assert (teacher.optimizer, teacher.lr, teacher.batch_size) == ("sgd", 0.5, 100)
    assert settings.extractor_name == "class_vis"
    assert settings.tracking.uri == f"sqlite:///{mnist_root}/mlflow.db"
    assert settings.run_name == "mnist | linear -> class_vis -> linear | seed 0"


def test_variants_name_what_differs_from_the_papers_settings():
    paper = settings_for("dataset=digits")
    assert paper.extractor_variant == "" and paper.student_variant == ""
    assert paper.teacher_variant == ""
    assert settings_for("dataset=digits", "trainer.teacher.epochs=2").teacher_variant == "epochs=2"
    tuned = settings_for("dataset=digits", "extractor.l2=0.135", "trainer.student.lr=0.6",
                         "trainer.student.mixup=50")
    assert tuned.extractor_variant == "l2=0.135"
    assert tuned.student_variant == "lr=0.6, mixup=50"
    # per_class is its own tag and column, not part of the variant
    assert settings_for("dataset=digits", "extractor.per_class=3", "extractor.start_std=0.1"
                        ).extractor_variant == "start_std=0.1"


def test_synthetic_dataset_needs_a_synthetic_set_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^dataset.path: expected an existing file"):
        settings_for("dataset=synthetic", f"dataset.path={tmp_path / 'none.safetensors'}")
    foreign = tmp_path / "notes.safetensors"
    foreign.write_text("not tensors")
    with pytest.raises(ConfigError, match=r"^dataset.path: expected a classvis synthetic set "
                                          r"file, got .*not a safetensors file") as raised:
        settings_for("dataset=synthetic", f"dataset.path={foreign}")
    assert "\n" not in str(raised.value)


def test_environment_chooses_the_tracking_store(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-sweep")
    settings = settings_for("dataset=digits")
    assert settings.tracking.uri == "http://127.0.0.1:5999"
    assert settings.tracking.experiment == "team-sweep"


def test_teacher_and_student_choose_architectures_independently():
    settings = settings_for("dataset=digits", "architecture@student=mlp", "student.hidden=[64,32]",
                            "student.activation=tanh")
    assert settings.teacher.label == "linear"
    assert settings.student.label == "mlp64-32-tanh"


@pytest.mark.parametrize("override,message", [
    ("trainer.teacher.lr=0", "trainer.teacher.lr: expected a number > 0, got 0.0"),
    ("tracking.uri=sqlite://", "tracking.uri: expected a store that outlives the run"),
    ("tracking.stale_after_s=0", "tracking.stale_after_s: expected a number of seconds > 0"),
    ("+sed=1", "sed: expected no such key; known top-level keys are compress, data_root,"),
    ("tracking.system_metrics=sometimes",
     "tracking.system_metrics: expected true or false, got 'sometimes'"),
    ("trainer.student.lr=-1", "trainer.student.lr: expected a number > 0, got -1.0"),
    ("tracking.log_models=sometimes",
     "tracking.log_models: expected one of 'student', 'all', 'none', got 'sometimes'"),
    ("trainer.teacher.epochs=0", "trainer.teacher.epochs: expected an integer >= 1, got 0"),
    ("trainer.teacher.epochs=2.5", "trainer.teacher.epochs: expected an integer or null, got 2.5"),
    ("trainer.teacher.steps=100", "trainer.teacher.steps: expected null when epochs is set"),
    ("trainer.student.start=teacher", "trainer.student.start: expected one of 'own_init'"),
    ("trainer.student.loss=hinge",
     "trainer.student.loss: expected one of 'mse', 'kl', got 'hinge'"),
    ("extractor.l2=-0.1", "extractor.l2: expected a number >= 0, got -0.1"),
    ("+extractor.sharpen=2", "extractor.sharpen: expected no such key"),
    ("architecture@student=linear", None),
    ("student.hidden=[30]", "student.hidden: expected [] for the linear model, got [30]"),
    ("dataset.classes=[3,eleven]", "dataset.classes: expected class names among 0, 1, 2"),
    ("seed=abc", "seed: expected an integer, got 'abc'"),
])
def test_invalid_values_fail_before_any_work(override, message):
    if message is None:
        settings_for("dataset=digits", override)
        return
    with pytest.raises(ConfigError) as error:
        settings_for("dataset=mnist", "dataset.download=true", override)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_missing_data_root_with_download_off(tmp_path):
    with pytest.raises(ConfigError, match=r"^dataset.root: expected torchvision's MNIST files in "
                       r".*absent/MNIST \(none there, and dataset.download=false\); ways out: "):
        settings_for(f"data_root={tmp_path}/absent", "dataset.download=false")


def test_output_weights_needs_a_linear_teacher():
    with pytest.raises(ConfigError, match="output_weights needs a teacher without hidden layers"):
        settings_for("dataset=digits", "extractor=output_weights", "architecture@teacher=mlp")


def test_image_folder_needs_its_root():
    with pytest.raises(ConfigError, match="^dataset.root: expected a value"):
        settings_for("dataset=image_folder")


@pytest.mark.parametrize("classes,message", [
    (("cat",), r"at least two class folders under train/ and test/, got '1 \(cat\) in "),
    ((), r"at least two class folders under train/ and test/, got '0 \(none\) in "),
])
def test_an_image_folder_is_checked_before_any_work(tmp_path, classes, message):
    from conftest import make_image_folder

    root = make_image_folder(tmp_path / "folder", classes=classes)
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "test").mkdir(parents=True, exist_ok=True)
    with pytest.raises(ConfigError, match="^dataset.root: expected " + message):
        settings_for("dataset=image_folder", f"dataset.root={root}")
    (root / "train" / "dog").mkdir()
    (root / "train" / "frog").mkdir()
    with pytest.raises(ConfigError, match=r"^dataset.root: expected the same class folders under "
                                          r"train/ and test/, got \"train \["):
        settings_for("dataset=image_folder", f"dataset.root={root}")


def test_config_digest_ignores_where_things_are_stored_but_not_what_is_run():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from classvis.from_config import config_digest

    def digest(*overrides):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=["dataset=mnist", *overrides])
        return config_digest(OmegaConf.to_container(cfg, resolve=True))

    base = digest()
    assert digest("tracking.uri=sqlite:////elsewhere.db", "teacher_cache.dir=/x", "force=true",
                  "data_root=/moved", "dataset.cache_dir=/c") == base
    assert digest("seed=1") != base
    assert digest("trainer.student.lr=0.5") != base
    assert digest("dataset.classes=[3,4]") != base


def test_slurm_launcher_config_carries_the_usual_knobs():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                                 "hydra.launcher.gpus_per_node=1"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node) == ("gpu", 1)
    assert (launcher.timeout_min, launcher.cpus_per_task, launcher.mem_gb) == (60, 4, 16)


# Bad values a demanding user tried: each fails at the door with one line naming the key.
# ``{file}`` is an existing file, ``{dir}`` a fresh folder.
AT_THE_DOOR = [
    ("dataset.classes=[3,42]", "dataset.classes: expected class names among 0, 1, 2"),
    ("dataset.classes=[3]", "dataset.classes: expected at least two distinct class names"),
    ("dataset.classes=[]", "dataset.classes: expected at least two distinct class names"),
    ("dataset.one_vs_rest=42", "dataset.one_vs_rest: expected class names among 0, 1"),
    ("trainer.teacher.lr=inf", "trainer.teacher.lr: expected a number > 0, got inf"),
    ("trainer.teacher.lr=nan", "trainer.teacher.lr: expected a number > 0, got nan"),
    ("trainer.student.lr=inf", "trainer.student.lr: expected a number > 0, got inf"),
    ("trainer.student.lr=-0.5", "trainer.student.lr: expected a number > 0, got -0.5"),
    ("extractor.l2=nan", "extractor.l2: expected a number >= 0, got nan"),
    ("extractor.l2=-inf", "extractor.l2: expected a number >= 0, got -inf"),
    ("extractor.tol=inf", "extractor.tol: expected a number >= 0, got inf"),
    ("extractor.per_class=0", "extractor.per_class: expected an integer >= 1, got 0"),
    ("extractor.steps=0", "extractor.steps: expected an integer >= 1, got 0"),
    ("trainer.student.steps=0", "trainer.student.steps: expected an integer >= 1, got 0"),
    ("trainer.teacher.batch_size=0", "trainer.teacher.batch_size: expected an integer >= 1"),
    ("trainer.teacher.epochs=-1", "trainer.teacher.epochs: expected an integer >= 1, got -1"),
    ("trainer.student.momentum=inf", "trainer.student.momentum: expected a number >= 0"),
    ("tracking.uri=notaurl", "tracking.uri: expected an MLflow tracking URI"),
    ("tracking.uri=ftp://host/runs", "tracking.uri: expected an MLflow tracking URI"),
    ("tracking.uri=sqlite:///{file}/sub/mlflow.db", "tracking.uri: expected a folder that can "
     "be created ({file} is a file)"),
    ("tracking.uri=sqlite:///{dir}", "tracking.uri: expected an SQLite database file"),
    ("tracking.artifact_dir={file}/artifacts", "tracking.artifact_dir: expected a folder that "
     "can be created ({file} is a file)"),
    ("teacher_cache.dir={file}/teachers", "teacher_cache.dir: expected a folder that can be "
     "created ({file} is a file)"),
    ("tracking.experiment=' '", "tracking.experiment: expected an experiment name"),
    ("tracking.retry_for_s=-1", "tracking.retry_for_s: expected a number of seconds >= 0"),
    ("tracking.stale_after_s=inf", "tracking.stale_after_s: expected a number of seconds > 0"),
    ("tracking.log_models=teacher", "tracking.log_models: expected one of 'student', 'all'"),
    ("progress=sometimes", "progress: expected auto, true or false, got 'sometimes'"),
    ("device=tpu", "device: expected auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ("privacy.enabled=maybe", "privacy.enabled: expected true or false, got 'maybe'"),
    ("force=2", "force: expected true or false"),
    ("seed=1.5", "seed: expected an integer, got 1.5"),
    ("+trainer.teacher.lr_decay=1", "trainer.teacher.lr_decay: expected no such key"),
]


@pytest.mark.parametrize("override,message", AT_THE_DOOR,
                         ids=[override for override, _ in AT_THE_DOOR])
def test_bad_values_fail_at_the_door_in_one_line(tmp_path, override, message):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "dir").mkdir()
    where = {"file": str(tmp_path / "file"), "dir": str(tmp_path / "dir")}
    with pytest.raises(ConfigError) as error:
        settings_for("dataset=digits", override.format(**where), base_dir=tmp_path)
    assert str(error.value).startswith(message.format(**where))
    assert "\n" not in str(error.value)


def test_a_synthetic_set_too_large_for_memory_is_refused_before_any_work(monkeypatch,
                                                                          mnist_root):
    import collections

    import psutil

    free = collections.namedtuple("Memory", "available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: free(2 * 2**30))
    settings_for("dataset=mnist", f"data_root={mnist_root}",
                 "extractor.per_class=1000", "extractor.start_std=0.1")
    with pytest.raises(ConfigError, match=r"^extractor.per_class: expected a synthetic set that "
                       r"fits in memory \(10000 x 10 images of 1x28x28 need about 2.6 GiB; this "
                       r"machine has 2.0 GiB free\), got 10000$"):
        settings_for("dataset=mnist", f"data_root={mnist_root}",
                     "extractor.per_class=10000", "extractor.start_std=0.1")
    settings_for("dataset=mnist", f"data_root={mnist_root}",
                 "extractor.per_class=10000", "extractor.start_std=0.1",
                 "dataset.classes=[3,8]", "privacy.enabled=false")  # 2 classes of the 10 fit


def test_torchvisions_class_names_are_known_before_loading():
    import torchvision.datasets as datasets

    from classvis.loaders.torchvision_files import TORCHVISION_CLASS_NAMES

    for name in ("MNIST", "FashionMNIST", "KMNIST"):
        assert TORCHVISION_CLASS_NAMES[name] == list(getattr(datasets, name).classes)


@pytest.mark.parametrize("change,problem", [
    ({"images": torch.full((4, 1, 8, 8), float("nan"))}, "its images hold NaN"),
    ({"labels": torch.tensor([0, 1, 2, 10])}, "its labels run 0..10, outside 0..9"),
    ({"images": torch.rand(0, 1, 8, 8), "soft_targets": torch.rand(0, 10),
      "labels": torch.zeros(0, dtype=torch.int64)}, "it holds no images"),
])
def test_an_unusable_synthetic_set_file_is_refused_at_the_door(tmp_path, change, problem):
    from classvis.synthetic import SyntheticSet

    values = {"images": torch.rand(4, 1, 8, 8), "soft_targets": torch.randn(4, 10),
              "labels": torch.tensor([0, 1, 2, 3]), "class_names": [str(d) for d in range(10)]}
    path = tmp_path / "set.safetensors"
    SyntheticSet(**{**values, **change}).save(path)
    with pytest.raises(ConfigError) as error:
        settings_for("dataset=synthetic", f"dataset.path={path}")
    assert str(error.value).startswith("dataset.path: expected a classvis synthetic set file")
    assert problem in str(error.value) and "\n" not in str(error.value)
