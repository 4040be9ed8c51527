"""Convolutional architectures: shapes for 1- and 3-channel images of several sizes, seeded
initialisation, and the refusals at the door (image too small, stages that need a dense model)."""

from __future__ import annotations

import pytest
import torch
from conftest import make_image_folder, make_mnist, training_runs
from test_config import settings_for
from torch import nn

from classvis.models import (
    ConvNetSettings,
    LeNet5Settings,
    ResNet18Settings,
    build_model,
    count_parameters,
    parse_architecture,
)
from classvis.validation import ConfigError

SMALL = [LeNet5Settings(), ConvNetSettings(depth=2, width=8),
         ConvNetSettings(depth=3, width=4, norm="batch"), ConvNetSettings(width=4, norm="none")]


@pytest.mark.parametrize("settings", SMALL, ids=lambda s: s.label)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 16, 20)])
def test_conv_models_score_every_class_for_any_channels_and_size(settings, shape):
    model = build_model(settings, shape, 7, seed=0)
    assert model(torch.rand(5, *shape)).shape == (5, 7)
    assert model.output_layer.out_features == 7 and model.input_shape == shape


def test_resnet18_is_torchvisions_with_a_small_image_stem():
    model = build_model(ResNet18Settings(), (1, 16, 16), 10, seed=0)
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 10)
    stem = model.network.conv1
    assert (stem.in_channels, stem.kernel_size, stem.stride) == (1, (3, 3), (1, 1))
    assert isinstance(model.network.maxpool, nn.Identity)
    assert any(isinstance(layer, nn.BatchNorm2d) for layer in model.modules())


def test_lenet5_has_the_classic_parameter_count_on_mnist():
    # 6*(25+1) + 16*(6*25+1) + (400+1)*120 + (120+1)*84 + (84+1)*10
    assert count_parameters(build_model(LeNet5Settings(), (1, 28, 28), 10, seed=0)) == 61706


@pytest.mark.parametrize("settings", SMALL[:2], ids=lambda s: s.label)
def test_a_seed_alone_decides_the_initial_weights(settings):
    torch.manual_seed(123)
    first = build_model(settings, (1, 16, 16), 3, seed=5).state_dict()
    torch.manual_seed(456)
    again = build_model(settings, (1, 16, 16), 3, seed=5).state_dict()
    other = build_model(settings, (1, 16, 16), 3, seed=6).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_zeros_init_zeroes_a_conv_models_output_layer_and_glorot_its_biases():
    zeros = build_model(LeNet5Settings(init="zeros"), (1, 16, 16), 3, seed=0)
    assert torch.count_nonzero(zeros(torch.rand(4, 1, 16, 16))) == 0
    assert torch.count_nonzero(zeros.features[0].weight) > 0  # hidden layers stay random
    glorot = build_model(ConvNetSettings(depth=2, width=8, init="glorot"), (1, 16, 16), 3, 0)
    biases = [m.bias for m in glorot.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)


def test_the_architecture_registry_parses_by_name_and_rejects_foreign_keys():
    assert parse_architecture({"name": "convnet", "depth": 2}, "teacher") == ConvNetSettings(
        depth=2)
    with pytest.raises(ConfigError, match=r"^teacher\.name: expected one of convnet, lenet5, "
                                          r"linear, mlp, module, resnet18, torchvision, "
                                          r"got 'vgg'$"):
        parse_architecture({"name": "vgg"}, "teacher")
    with pytest.raises(ConfigError, match=r"^student\.hidden: expected no such key; known keys "
                                          r"are name, activation, init$"):
        parse_architecture({"name": "lenet5", "hidden": [30]}, "student")
    with pytest.raises(ConfigError, match=r"^teacher\.norm: expected one of"):
        parse_architecture({"name": "convnet", "norm": "layer"}, "teacher")


def test_labels_tell_conv_variants_apart():
    assert ConvNetSettings().label == "convnet3x128"
    assert ConvNetSettings(depth=2, width=32, norm="batch").label == "convnet2x32-batchnorm"
    assert LeNet5Settings(activation="tanh").label == "lenet5-tanh"


@pytest.mark.parametrize("overrides, message", [
    (["architecture@teacher=lenet5", "extractor=output_weights"],
     "extractor.name: expected output_weights needs a teacher without hidden layers "
     "(architecture@teacher=linear), got 'lenet5'"),
    (["architecture@teacher=convnet", "compress=biases"],
     "compress: expected none with a convolutional teacher (compress=biases makes the images the "
     "weight rows of a model without hidden layers, the paper's shallow setting), got "
     "'convnet3x128'"),
    (["architecture@student=lenet5", "trainer.student.hidden_init=span"],
     "trainer.student.hidden_init: expected model with a convolutional student (span initialises "
     "a dense first layer), got 'span'"),
    (["architecture@teacher=convnet", "teacher.depth=6"],
     "teacher.depth: expected at most 4 for 28x28 images (each block halves the image; depth 6 "
     "pools it below 1x1), got 6"),
])
def test_what_needs_a_dense_or_larger_model_is_refused_at_the_door(mnist_root, overrides,
                                                                   message):
    with pytest.raises(ConfigError) as error:
        settings_for(f"data_root={mnist_root}", "dataset.download=false", *overrides)
    assert str(error.value) == message


def test_the_image_size_is_checked_for_every_kind_of_dataset(tmp_path):
    with pytest.raises(ConfigError, match=r"^student: expected images of at least 12x12 pixels "
                                          r"for lenet5 .* dataset images are 8x8"):
        settings_for("dataset=digits", "architecture@student=lenet5")
    with pytest.raises(ConfigError, match=r"^teacher\.depth: expected at most 3 for 8x8 images"):
        settings_for("dataset=digits", "architecture@teacher=convnet", "teacher.depth=4")
    folder = make_image_folder(tmp_path / "folder")  # 12x12 RGB
    settings = settings_for("dataset=image_folder", f"dataset.root={folder}",
                            "architecture@teacher=lenet5", "architecture@student=convnet")
    assert settings.teacher.label == "lenet5"
    with pytest.raises(ConfigError, match=r"^student\.depth: expected at most 3 for 12x12"):
        settings_for("dataset=image_folder", f"dataset.root={folder}",
                     "architecture@student=convnet", "student.depth=4")


@pytest.mark.slow
def test_a_lenet5_run_end_to_end_logs_its_models_and_metrics(tmp_path):
    from test_train_e2e import client_for, train

    data_root = make_mnist(tmp_path / "data", train=600, test=200)
    db = tmp_path / "mlflow.db"
    result = train(tmp_path, "architecture@teacher=lenet5", "architecture@student=lenet5",
                   "trainer.teacher.lr=0.05", "trainer.teacher.momentum=0.9",
                   "trainer.teacher.epochs=3", "trainer.teacher.batch_size=32",
                   "trainer.student.lr_scaling=none",
                   "trainer.student.optimizer=adam", "trainer.student.lr=0.001",
                   "trainer.student.steps=100",
                   "extractor.steps=50", f"tracking.uri=sqlite:///{db}",
                   f"teacher_cache.dir={tmp_path}/teachers",
                   env={"CLASSVIS_DATA": str(data_root)})
    assert result.returncode == 0, result.stderr[-3000:]
    client = client_for(db)
    (run,) = training_runs(client, [client.get_experiment_by_name("classvis").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "mnist | lenet5 -> class_vis x10 -> lenet5 | seed 0"
    assert run.data.tags["teacher"] == run.data.tags["student"] == "lenet5"
    assert run.data.metrics["teacher/parameters"] == 61706
    assert run.data.metrics["teacher/accuracy"] > 0.9
    assert 0.0 <= run.data.metrics["extract/teacher_agreement"] <= 1.0
    assert 0.0 <= run.data.metrics["student/accuracy"] <= 1.0


@pytest.mark.slow
def test_the_deep_preset_sets_visualizations_against_real_images_and_reports_both(tmp_path):
    import csv
    import subprocess
    import sys

    from conftest import ROOT
    from test_train_e2e import client_for, train

    data_root = make_mnist(tmp_path / "data", train=600, test=200)
    db = tmp_path / "mlflow.db"
    result = train(tmp_path, "+experiment=deep", "+experiment/deep=k1", "trainer.teacher.epochs=3",
                   "trainer.teacher.batch_size=32",
                   "trainer.student.steps=30", f"tracking.uri=sqlite:///{db}",
                   f"teacher_cache.dir={tmp_path}/teachers", f"hydra.sweep.dir={tmp_path}/sweep",
                   env={"CLASSVIS_DATA": str(data_root)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 jobs: 2 succeeded," in result.stdout
    client = client_for(db)
    runs = training_runs(client, [client.get_experiment_by_name("deep").experiment_id])
    cells = sorted((r.data.tags["extractor"], r.data.tags["per_class"],
                    r.data.tags["teacher_origin"]) for r in runs)
    assert [cell[:2] for cell in cells] == [("class_vis", "1"), ("real_subset", "1")]
    assert sorted(cell[2] for cell in cells) == ["cache", "trained"]  # one teacher
    for run in runs:
        # the extractor the preset chose, not only the ascent that implements it
        assert run.data.tags["choice.extractor"] == {"class_vis": "deep_vis", "real_subset":
                                                     "real_subset"}[run.data.tags["extractor"]]
        assert run.data.tags["choice.experiment"] == "deep"
        assert run.data.tags["student_variant"].startswith("optimizer=adam")
        assert run.data.metrics["teacher/accuracy"] > 0.9
    real = [r for r in runs if r.data.tags["extractor"] == "real_subset"]
    assert all(r.data.metrics["privacy/distance_ratio"] == 0.0 for r in real)  # real images
    report = subprocess.run([sys.executable, "-m", "classvis.report", "--experiment", "deep",
                             "--tracking-uri", f"sqlite:///{db}", "--output",
                             str(tmp_path / "report")], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    with (tmp_path / "report" / "deep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["Per class"], row["Images"]) for row in rows] == [("1", "10")]
    assert rows[0]["Student (class visualizations)"] != "-" != rows[0]["Student (real images)"]


@pytest.mark.slow
def test_the_cifar10_preset_runs_a_batchnorm_convnet_teacher_at_small_width(tmp_path):
    """conf/experiment/deep_cifar10.yaml at a CPU-sized width on a generated image folder: a
    BatchNorm ConvNet teacher (crop/flip), deep_vis_bn with flips and the BN term, an
    instance-norm ConvNet student, and the real-image baseline."""
    from test_train_e2e import client_for, train

    make_image_folder(tmp_path / "data" / "cifar10-jpg", per_class=(16, 6))
    db = tmp_path / "mlflow.db"
    result = train(tmp_path, "+experiment=deep_cifar10", "+experiment/deep=k1", "teacher.width=4",
                   "student.width=4", "trainer.teacher.epochs=2", "trainer.student.steps=20",
                   f"tracking.uri=sqlite:///{db}", f"teacher_cache.dir={tmp_path}/teachers",
                   f"hydra.sweep.dir={tmp_path}/sweep",
                   env={"CLASSVIS_DATA": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 jobs: 2 succeeded," in result.stdout
    client = client_for(db)
    runs = training_runs(client, [client.get_experiment_by_name("deep_cifar10").experiment_id])
    by_extractor = {r.data.tags["extractor"]: r for r in runs}
    assert set(by_extractor) == {"class_vis", "real_subset"}
    for run in runs:
        assert run.data.tags["dataset"] == "cifar10_jpg"
        assert run.data.tags["teacher"] == "convnet3x4-batchnorm"
        assert run.data.tags["student"] == "convnet3x4"
        assert "augment=crop_flip" in run.data.tags["teacher_variant"]
    variant = by_extractor["class_vis"].data.tags["extractor_variant"]
    assert "flip=True" in variant and "bn=0.01" in variant and "batch_size=100" in variant
    assert by_extractor["class_vis"].data.metrics["synthetic/images"] == 3
