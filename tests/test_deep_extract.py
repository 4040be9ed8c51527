"""Extraction for deep teachers: image priors, the Fourier parameterisation, DeepInversion's
BatchNorm-statistics term and extraction in groups of images."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_numeric import toy_data
from torch import nn

from classvis.extract import ClassVisSettings, class_vis
from classvis.fit import TeacherTraining, fit
from classvis.models import ConvNetSettings, LeNet5Settings, build_model
from classvis.priors import FourierImage, batchnorm_statistics
from classvis.validation import ConfigError, parse

BN_NET = ConvNetSettings(depth=2, width=8, norm="batch")


def conv_teacher(data, settings=BN_NET):
    teacher = build_model(settings, data.image_shape, data.num_classes, seed=0)
    fit(teacher, data.train_x, data.train_y,
        TeacherTraining(lr=0.05, momentum=0.9, batch_size=20, epochs=10), seed=0)
    return teacher


def test_the_batchnorm_term_is_zero_when_a_batch_has_the_running_statistics():
    layer = nn.BatchNorm2d(3)
    batch = torch.randn(16, 3, 5, 5) * 2 + 1
    layer.running_mean.copy_(batch.mean((0, 2, 3)))
    layer.running_var.copy_(batch.var((0, 2, 3), unbiased=False))
    model = nn.Sequential(layer).eval()
    with batchnorm_statistics(model) as terms:
        model(batch)
        model(batch + 1)
    assert len(terms) == 2
    assert terms[0].item() == pytest.approx(0.0, abs=1e-5)
    assert terms[1].item() == pytest.approx(3 ** 0.5, rel=1e-4)  # each channel's mean off by 1
    model(batch)
    assert len(terms) == 2  # hooks removed on exit


def test_the_fourier_parameterisation_starts_at_the_given_images():
    start = torch.randn(3, 2, 9, 10)
    image = FourierImage(start)
    assert torch.allclose(image.images(), start, atol=1e-5)
    image.images().sum().backward()  # gradients reach the coefficients
    assert image.coefficients.grad is not None


def test_random_views_run_every_step_and_groups_cover_every_class():
    data = toy_data(side=12, per_class=20)
    teacher = conv_teacher(data, LeNet5Settings())
    settings = ClassVisSettings(per_class=5, start_std=0.2, steps=15, jitter=1, flip=True,
                                scale=0.1, batch_size=8, optimizer="adam", lr=0.05,
                                target="log_prob")
    assert settings.group_size(4) == 2 and settings.progress_steps(4) == 45
    reported = []
    result = class_vis(teacher, data, settings, seed=0, on_step=lambda s, _: reported.append(s))
    assert reported == list(range(1, 46))  # 3 groups of 15 steps
    assert result.images.shape == (20, 1, 12, 12) and bool(torch.isfinite(result.images).all())
    assert result.labels.tolist() == [c for c in range(4) for _ in range(5)]
    assert result.info["steps"] == 15.0
    again = class_vis(teacher, data, settings, seed=0)
    assert torch.equal(again.images, result.images)


def test_grouped_extraction_equals_whole_batch_extraction_without_batch_coupling():
    data = toy_data(side=8)
    teacher = conv_teacher(data, ConvNetSettings(depth=2, width=8, norm="none"))
    whole = ClassVisSettings(per_class=4, start_std=0.2, steps=20)  # no term couples images
    grouped = class_vis(teacher, data, dataclasses.replace(whole, batch_size=8), seed=0)
    together = class_vis(teacher, data, whole, seed=0)
    assert torch.allclose(grouped.images, together.images, atol=1e-5)


def test_the_batchnorm_term_pulls_the_images_statistics_towards_the_teachers():
    data = toy_data(side=8, per_class=40)
    teacher = conv_teacher(data)
    base = ClassVisSettings(per_class=4, start_std=0.2, steps=200, optimizer="adam", lr=0.05,
                            target="log_prob", l2=0.001)

    def mismatch(images):
        with torch.no_grad(), batchnorm_statistics(teacher) as terms:
            teacher(images)
        return float(sum(terms))

    plain = class_vis(teacher, data, base, seed=0)
    matched = class_vis(teacher, data, dataclasses.replace(base, bn=1.0), seed=0)
    assert mismatch(matched.images) < 0.5 * mismatch(plain.images)
    assert matched.info["teacher_agreement"] == 1.0


def test_fourier_images_still_reach_their_class():
    data = toy_data(side=8, per_class=40)
    teacher = conv_teacher(data)
    result = class_vis(teacher, data, ClassVisSettings(param="fourier", steps=100, lr=0.05,
                                                       optimizer="adam", target="log_prob",
                                                       l2=0.001, clip=True), seed=0)
    assert result.info["teacher_agreement"] == 1.0
    assert float(result.images.min()) >= 0.0 and float(result.images.max()) <= 1.0


@pytest.mark.parametrize("options, message", [
    ({"scale": 1.0}, "extractor.scale: expected a fraction in [0, 1), got 1.0"),
    ({"bn": -1.0}, "extractor.bn: expected a number >= 0, got -1.0"),
    ({"param": "wavelet"}, "extractor.param: expected one of 'pixel', 'fourier', got 'wavelet'"),
    ({"batch_size": -5}, "extractor.batch_size: expected a number >= 0, got -5"),
])
def test_bad_extractor_options_are_one_line(options, message):
    with pytest.raises(ConfigError) as error:
        parse(ClassVisSettings, options, "extractor")
    assert str(error.value) == message


def test_adam_and_fourier_are_free_of_the_sgd_step_bound():
    parse(ClassVisSettings, {"lr": 5.0, "optimizer": "adam"}, "extractor")
    with pytest.raises(ConfigError, match=r"^extractor\.lr: expected lr \* \(2 \* l2"):
        parse(ClassVisSettings, {"lr": 5.0}, "extractor")


def test_the_batchnorm_term_needs_a_teacher_with_batchnorm(mnist_root):
    from test_config import settings_for

    common = [f"data_root={mnist_root}", "dataset.download=false", "extractor.bn=0.01"]
    with pytest.raises(ConfigError) as error:
        settings_for(*common, "architecture@teacher=lenet5")
    assert str(error.value) == ("extractor.bn: expected 0 for a teacher without BatchNorm layers "
                                "(resnet18 or convnet with norm=batch have them), got 0.01")
    assert settings_for(*common, "architecture@teacher=convnet",
                        "teacher.norm=batch").extractor.bn == 0.01


def test_the_real_subset_baseline_draws_k_distinct_training_images_per_class():
    from classvis.extract import RealSubsetSettings, real_subset

    data = toy_data(per_class=10)
    result = real_subset(None, data, RealSubsetSettings(per_class=3), seed=1)
    assert result.labels.tolist() == [c for c in range(4) for _ in range(3)]
    rows = {tuple(image.flatten().tolist()) for image in result.images}
    train_rows = {tuple(image.flatten().tolist()) for image in data.train_x}
    assert len(rows) == 12 and rows <= train_rows
    assert torch.equal(real_subset(None, data, RealSubsetSettings(3), seed=1).images,
                       result.images)
    assert not torch.equal(real_subset(None, data, RealSubsetSettings(3), seed=2).images,
                           result.images)
    with pytest.raises(ConfigError, match=r"^extractor\.per_class: expected at most 10"):
        real_subset(None, data, RealSubsetSettings(per_class=11), seed=1)
