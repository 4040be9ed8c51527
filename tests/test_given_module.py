"""``teacher_from=module``: a network of the user's own code (``teacher.network._target_``) with
its trained weights as the teacher. It sees its declared normalisation while every image stays
in [0, 1]; the same classifier behind a normalisation gives the same run as the built-in one;
every bad network, file or declaration is refused at the door in one line naming the key."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from safetensors.torch import save_file
from test_config import settings_for

from classvis import pipeline, stages
from classvis.validation import ConfigError

DIGITS = ["dataset=digits", "trainer.teacher.epochs=3", "trainer.student.steps=100",
          "device=cpu", "privacy.enabled=false", "extractor=class_vis"]
MEAN, STD = 0.25, 0.5
MODULE = ["teacher_from=module", "teacher.network._target_=user_networks.Linear",
          "teacher.height=8", "teacher.width=8", f"teacher.mean=[{MEAN}]", f"teacher.std=[{STD}]"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A linear teacher classvis trained on the digits, and the same classifier as the user's
    ``Linear`` on normalised pixels: W (x - m) / s + b' = W x + b for W' = W s, b' = b + W m."""
    folder = tmp_path_factory.mktemp("module")
    own = pipeline.run(settings_for(*DIGITS, "teacher_cache.enabled=false"))
    weight, bias = own.teacher.state_dict()["1.weight"], own.teacher.state_dict()["1.bias"]
    user = {"fc.weight": (weight * STD).contiguous(),
            "fc.bias": (bias + MEAN * weight.sum(1)).contiguous()}
    save_file(user, str(folder / "linear.safetensors"))
    torch.save(user, folder / "linear.pt")
    return folder, own


def module(path, *overrides: str):
    return settings_for(*DIGITS, *MODULE, f"teacher_from.path={path}", *overrides)


def test_the_users_network_behind_its_normalisation_gives_the_same_run(trained, tmp_path):
    folder, own = trained
    settings = module(folder / "linear.safetensors", f"teacher_cache.dir={tmp_path / 't'}")
    assert settings.run_name == ("digits | module:Linear [module] -> class_vis -> linear | "
                                 "seed 0")
    result = pipeline.run(settings)
    assert result.teacher_origin == "module" and result.teacher_losses == []
    assert result.evaluations["teacher"].accuracy == own.evaluations["teacher"].accuracy
    # the images stay in pixel space: the same as the built-in teacher's, to float rounding
    torch.testing.assert_close(result.synthetic.images, own.synthetic.images, atol=1e-4,
                               rtol=0)
    assert abs(result.evaluations["student"].accuracy
               - own.evaluations["student"].accuracy) <= 0.01
    assert not result.teacher.training
    assert not any(parameter.requires_grad for parameter in result.teacher.parameters())
    assert not (tmp_path / "t").exists()  # a given teacher is never cached


def test_a_module_teacher_defaults_to_deep_vis_and_finds_its_batchnorm(trained, tmp_path):
    from user_networks import SmallConv

    from classvis.models import has_batchnorm

    net = SmallConv()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(tmp_path / "conv.safetensors"))
    base = ["dataset=digits", "teacher_from=module", "teacher.network._target_="
            "user_networks.SmallConv", "teacher.height=8", "teacher.width=8",
            f"teacher_from.path={tmp_path / 'conv.safetensors'}"]
    settings = settings_for(*base)
    assert settings.extractor.jitter > 0 and settings.per_class == 10  # deep_vis, k = 10
    assert has_batchnorm(settings.teacher)
    assert settings_for(*base, "extractor=deep_vis_bn").extractor.bn > 0
    teacher = stages.obtain_run_teacher(settings, pipeline.load_data(settings))
    assert all(torch.equal(value, net.state_dict()[key])
               for key, value in teacher.model.network.state_dict().items())
    assert not has_batchnorm(module(trained[0] / "linear.pt").teacher)


@pytest.mark.parametrize("overrides,message", [
    (["teacher.network._target_=user_networks.Missing"],
     "teacher.network._target_: expected a class or function that imports, got "
     "'user_networks.Missing: user_networks has no Missing'"),
    (["teacher.network._target_=no_such_package.Net"],
     "teacher.network._target_: expected a class or function on the Python path "
     "(package.module.Name), got 'no_such_package.Net'"),
    (["teacher.network._target_=user_networks.not_a_module"],
     "teacher.network._target_: expected a class or function that makes a torch.nn.Module, "
     "got 'user_networks.not_a_module made str'"),
    (["teacher.network._target_=user_networks.Raises"],
     "teacher.network._target_: expected a network built from the keyword arguments given, "
     "got 'user_networks.Raises() raised RuntimeError: no GPU found'"),
    (["+teacher.network.num_classes=3"],
     "teacher_from.path: expected weights that fit architecture@teacher=module:Linear for "
     "digits (1x8x8, 10 classes), got"),
    (["teacher.height=28", "teacher.width=28"],
     "teacher.channels: expected the dataset's image shape 1x8x8 (the network declares "
     "1x28x28: teacher.channels, height, width), got 1"),
    (["teacher.mean=[0.1,0.2]"], "teacher.mean: expected 1 or 1 values (one per channel)"),
    (["teacher.std=[0]"], "teacher.std: expected values > 0, got [0.0]"),
    (["architecture@student=module"], "architecture@student: expected a built-in "
     "architecture (module is a trained network you bring as the teacher"),
])
def test_a_bad_network_or_declaration_is_refused_in_one_line(trained, overrides, message):
    with pytest.raises(ConfigError) as refused:
        module(trained[0] / "linear.safetensors", *overrides)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_a_network_whose_scores_are_not_the_datasets_classes_is_refused(tmp_path):
    from user_networks import Linear

    save_file({k: v.contiguous() for k, v in Linear(64, 3).state_dict().items()},
              str(tmp_path / "three.safetensors"))
    with pytest.raises(ConfigError) as refused:
        settings_for(*DIGITS, *MODULE, "+teacher.network.num_classes=3",
                     f"teacher_from.path={tmp_path / 'three.safetensors'}")
    assert str(refused.value) == (
        "teacher.network._target_: expected a network that scores the declared input as "
        "architecture@teacher=module:Linear for digits (1x8x8, 10 classes), got \"a zero batch "
        "of [2, 1, 8, 8] gave scores of shape [2, 3], expected [2, 10] (the dataset's "
        "classes)\"")


def test_a_module_needs_its_network_and_the_module_route(tmp_path):
    with pytest.raises(ConfigError) as refused:
        settings_for("dataset=digits", "teacher_from=module", f"teacher_from.path={tmp_path}")
    assert str(refused.value).startswith("teacher.network._target_: expected a value")
    with pytest.raises(ConfigError) as refused:
        settings_for("dataset=digits", "architecture@teacher=module",
                     "teacher.network._target_=user_networks.Linear")
    assert str(refused.value).startswith(
        "teacher_from: expected module with architecture@teacher=module")
    with pytest.raises(ConfigError) as refused:
        settings_for("dataset=digits", "teacher_from=module", "architecture@teacher=linear",
                     f"teacher_from.path={tmp_path}")
    assert str(refused.value) == (
        "teacher_from: expected train, weights or mlflow with architecture@teacher=linear "
        "(teacher_from=module chooses architecture module), got 'module'")


@pytest.mark.slow
def test_train_py_takes_a_module_teacher_and_refuses_a_bad_one_with_exit_2(trained, tmp_path):
    folder, _ = trained
    env = {"PYTHONPATH": str(ROOT / "tests"), "PATH": "/usr/bin:/bin", "CI": "true"}
    base = [sys.executable, str(ROOT / "train.py"), *DIGITS, *MODULE,
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    done = subprocess.run([*base, f"teacher_from.path={folder / 'linear.pt'}"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "module:Linear [module]" in done.stdout
    bad = subprocess.run([*base, f"teacher_from.path={folder / 'linear.pt'}",
                          "teacher.network._target_=user_networks.Missing"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "classvis: error: invalid config: teacher.network._target_: expected a class or "
        "function that imports, got 'user_networks.Missing: user_networks has no Missing'"]


def test_a_preset_with_a_module_teacher_asks_for_the_architecture_on_the_command_line():
    from classvis.commandline import check_group_choices

    conf = ROOT / "conf"
    with pytest.raises(ConfigError) as refused:
        check_group_choices(["+experiment=deep", "teacher_from=module"], conf)
    assert str(refused.value).startswith(
        "architecture@teacher: expected module beside teacher_from=module and a preset")
    check_group_choices(["+experiment=deep", "teacher_from=module",
                         "architecture@teacher=module"], conf)
    check_group_choices(["teacher_from=module"], conf)


def test_a_torchvision_network_is_a_module_teacher_with_its_normalisation(tmp_path):
    """``torchvision.models.resnet18`` built by ``_target_`` with ``num_classes``, ImageNet's
    per-channel normalisation declared, its weights saved as a user would: it passes the door
    (the zero-batch forward included), and its BatchNorm layers are found for deep_vis_bn."""
    from conftest import make_image_folder
    from torchvision.models import resnet18

    from classvis.models import has_batchnorm

    root = make_image_folder(tmp_path / "folder")  # 3 classes of 3x12x12 images
    path = tmp_path / "resnet18.pt"
    torch.save(resnet18(num_classes=3).state_dict(), path)
    settings = settings_for(
        "dataset=image_folder", f"dataset.root={root}", "teacher_from=module",
        "teacher.network._target_=torchvision.models.resnet18", "+teacher.network.num_classes=3",
        "teacher.channels=3", "teacher.height=12", "teacher.width=12",
        "teacher.mean=[0.485,0.456,0.406]", "teacher.std=[0.229,0.224,0.225]",
        f"teacher_from.path={path}", "extractor=deep_vis_bn")
    assert has_batchnorm(settings.teacher) and settings.extractor.bn > 0
    assert settings.teacher.label == "module:resnet18"
    teacher = stages.obtain_run_teacher(settings, pipeline.load_data(settings))
    torch.testing.assert_close(teacher.model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert teacher.model(torch.rand(2, 3, 12, 12)).shape == (2, 3)
