"""Training recipes for convolutional models: augmentation of the real set (crop, flip), student
minibatches and augmented views of the synthetic set with re-scored or kept soft targets."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_numeric import LINEAR, toy_data, trained_teacher

from classvis.augment import affine, crop_flip
from classvis.distill import StudentTraining, distill
from classvis.extract import soft_targets
from classvis.fit import TeacherTraining, fit
from classvis.models import ConvNetSettings, build_model
from classvis.validation import ConfigError, parse


def test_crop_moves_each_image_by_its_own_offset_within_the_padding():
    images = torch.zeros(64, 2, 6, 6)
    images[:, :, 2, 3] = torch.arange(1, 3).view(1, 2)  # one bright pixel per channel
    out = crop_flip(images, padding=2, flip=False, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    positions = {tuple((out[i, 0] == 1).nonzero()[0].tolist()) for i in range(64)}
    assert len(positions) > 10  # many offsets drawn
    for row, col in positions:
        assert abs(row - 2) <= 2 and abs(col - 3) <= 2
    assert torch.equal(out[:, 1], 2 * out[:, 0])  # channels move together


def test_flip_mirrors_about_half_the_images_and_nothing_else():
    images = torch.rand(200, 1, 5, 5)
    out = crop_flip(images, padding=0, flip=True, generator=torch.Generator().manual_seed(0))
    same = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 70 < sum(mirrored) < 130
    assert torch.equal(crop_flip(images, 0, False, torch.Generator()), images)


def test_affine_views_keep_shapes_differ_per_image_and_pass_gradients():
    images = torch.rand(8, 3, 16, 16, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    assert affine(images, (), generator) is images
    out = affine(images, ("shift", "scale", "rotate", "flip"), generator)
    assert out.shape == images.shape
    assert not torch.allclose(out, images)
    out.sum().backward()
    assert images.grad is not None and torch.count_nonzero(images.grad) > 0
    again = affine(images, ("shift", "scale", "rotate", "flip"),
                   torch.Generator().manual_seed(0))
    assert torch.equal(again, out.detach()) or torch.allclose(again, out)


def test_an_augmented_teacher_is_reproducible_and_still_learns():
    data = toy_data(side=8)
    recipe = TeacherTraining(lr=0.5, batch_size=20, epochs=20, augment="crop_flip",
                             crop_padding=1)
    weights = []
    for _ in range(2):
        model = build_model(LINEAR, data.image_shape, data.num_classes, seed=0)
        fit(model, data.train_x, data.train_y, recipe, seed=3)
        weights.append(model[-1].weight.detach().clone())
    assert torch.equal(*weights)
    plain = build_model(LINEAR, data.image_shape, data.num_classes, seed=0)
    fit(plain, data.train_x, data.train_y, dataclasses.replace(recipe, augment="none"), seed=3)
    assert not torch.equal(plain[-1].weight, weights[0])
    accuracy = (model(data.test_x).argmax(1) == data.test_y).float().mean()
    assert accuracy > 0.9


def test_minibatches_visit_every_image_once_per_pass():
    data = toy_data(per_class=10)
    teacher = trained_teacher(data)
    images = data.train_x[:12]
    targets = soft_targets(teacher, images)
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = build_model(LINEAR, data.image_shape, data.num_classes, seed=0)

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.inner(x)

    distill(Recorder(), images, targets, StudentTraining(batch_size=5, steps=6, lr_scaling="none",
                                                       lr=0.01), seed=0)
    assert [len(batch) for batch in seen] == [5] * 6
    first_pass = torch.cat(seen[:2])  # 10 of 12 images, then a new permutation
    assert len({tuple(x.flatten().tolist()) for x in first_pass}) == 10


def test_augmented_views_rescored_by_the_teacher_teach_more_than_kept_targets():
    data = toy_data(side=8, per_class=60)
    teacher = trained_teacher(data)
    images = data.train_x[::15]  # 16 real images
    targets = soft_targets(teacher, images)
    recipe = StudentTraining(optimizer="adam", lr=0.01, lr_scaling="none", steps=300,
                             augment=("shift", "scale", "rotate"))
    with pytest.raises(ValueError, match="augment_targets=teacher needs the teacher"):
        distill(build_model(LINEAR, data.image_shape, 4, seed=1), images, targets, recipe)
    error = {}
    for choice in ("teacher", "keep"):
        student = build_model(LINEAR, data.image_shape, 4, seed=1)
        losses = distill(student, images, targets,
                         dataclasses.replace(recipe, augment_targets=choice), seed=0,
                         teacher=teacher)
        assert len(losses) == 300
        with torch.no_grad():  # how far the student's logits are from the teacher's on real data
            error[choice] = (student(data.test_x) - teacher(data.test_x)).pow(2).mean().item()
    # kept targets tell the student that every view scores like the original: a wrong lesson
    assert error["teacher"] < 0.3 * error["keep"]


def test_a_conv_student_learns_from_minibatches_on_its_device():
    data = toy_data(side=8, per_class=20)
    teacher = trained_teacher(data)
    images, targets = data.train_x, soft_targets(teacher, data.train_x)
    student = build_model(ConvNetSettings(depth=2, width=8), data.image_shape, 4, seed=0)
    losses = distill(student, images, targets,
                     StudentTraining(optimizer="adam", lr=0.01, lr_scaling="none", steps=150,
                                     batch_size=16, augment=("shift",)),
                     seed=0, teacher=teacher)
    assert losses[-1] < 0.2 * losses[0]
    assert (student(data.test_x).argmax(1) == data.test_y).float().mean() > 0.9


@pytest.mark.parametrize("options, message", [
    ({"optimizer": "lbfgs", "batch_size": 10},
     "student.optimizer: expected sgd or adam with minibatches or augmentation"),
    ({"optimizer": "lbfgs", "augment": ["flip"]}, "student.optimizer: expected sgd or adam"),
    ({"augment": ["shift", "shift"]},
     "student.augment: expected each of shift, scale, rotate, flip at most once"),
    ({"augment": ["crop"]}, "student.augment[0]: expected one of 'shift', 'scale', 'rotate', "
                            "'flip', got 'crop'"),
    ({"batch_size": -1}, "student.batch_size: expected a number >= 0, got -1"),
])
def test_student_recipes_that_cannot_work_are_refused(options, message):
    with pytest.raises(ConfigError) as error:
        parse(StudentTraining, options, "student")
    assert str(error.value).startswith(message)


def test_teacher_augmentation_choices_are_checked():
    with pytest.raises(ConfigError, match=r"^teacher\.augment: expected one of 'none', 'crop', "
                                          r"'crop_flip', got 'flip'$"):
        parse(TeacherTraining, {"augment": "flip"}, "teacher")
    with pytest.raises(ConfigError, match=r"^teacher\.crop_padding: expected a number >= 0"):
        parse(TeacherTraining, {"crop_padding": -2}, "teacher")


def test_a_student_from_a_file_cannot_ask_a_teacher_to_score_its_views(tmp_path):
    from test_config import settings_for

    from classvis.synthetic import SyntheticSet

    path = tmp_path / "set.safetensors"
    SyntheticSet(images=torch.rand(4, 1, 8, 8), soft_targets=torch.randn(4, 2),
                 labels=torch.tensor([0, 1, 0, 1]), class_names=["a", "b"],
                 metadata={"dataset": "toy", "teacher": "linear"}).save(path)
    common = ["dataset=synthetic", f"dataset.path={path}", "trainer.student.augment=[shift]"]
    with pytest.raises(ConfigError, match=r"^trainer\.student\.augment_targets: expected keep with "
                                          r"dataset=synthetic"):
        settings_for(*common)
    assert settings_for(*common, "trainer.student.augment_targets=keep").trainer.student.augment \
        == ("shift",)
