"""Each numeric stage on tiny tensors: what the paper's protocol promises."""

from __future__ import annotations

import math

import pytest
import torch

from classvis.data import ImageData
from classvis.distill import StudentTraining, distill
from classvis.evaluate import evaluate
from classvis.extract import (
    ClassVisSettings,
    NoSettings,
    class_average,
    class_vis,
    extract,
    output_weights,
    soft_targets,
)
from classvis.fit import DivergenceError, TeacherTraining, fit
from classvis.models import DenseSettings, build_model, count_parameters
from classvis.validation import ConfigError

LINEAR = DenseSettings(name="linear")
MLP = DenseSettings(name="mlp", hidden=(16,))


def toy_data(classes: int = 4, per_class: int = 50, side: int = 6, seed: int = 0) -> ImageData:
    """Gaussian blobs around one random prototype image per class, pixels clipped to [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(classes, 1, side, side, generator=generator)

    def sample(count: int):
        labels = torch.arange(classes).repeat_interleave(count)
        noise = 0.15 * torch.randn(len(labels), 1, side, side, generator=generator)
        return (prototypes[labels] + noise).clamp(0, 1), labels

    train_x, train_y = sample(per_class)
    test_x, test_y = sample(per_class // 2)
    return ImageData("toy", [f"c{i}" for i in range(classes)], train_x, train_y, test_x, test_y)


def trained_teacher(data: ImageData, architecture=LINEAR, epochs: int = 30):
    teacher = build_model(architecture, data.image_shape, data.num_classes, seed=0)
    fit(teacher, data.train_x, data.train_y, TeacherTraining(lr=0.5, batch_size=20, epochs=epochs),
        seed=0)
    return teacher


def distillation_setup(data: ImageData, student_architecture=LINEAR):
    """A trained linear teacher, its class visualizations, their soft targets, a fresh student."""
    teacher = trained_teacher(data)
    images = extract(teacher, data, "class_vis", ClassVisSettings())
    student = build_model(student_architecture, data.image_shape, data.num_classes, seed=1)
    return teacher, images, soft_targets(teacher, images.images), student


def test_zero_initialised_linear_model_scores_every_class_zero():
    data = toy_data()
    model = build_model(LINEAR, data.image_shape, data.num_classes, seed=3)
    assert torch.count_nonzero(model(data.test_x)) == 0
    assert count_parameters(model) == 36 * 4 + 4


def test_mlp_zero_init_keeps_hidden_layer_random_and_output_zero():
    model = build_model(MLP, (1, 6, 6), 4, seed=3)
    assert torch.count_nonzero(model.output_layer.weight) == 0
    assert torch.count_nonzero(model[1].weight) > 0
    again = build_model(MLP, (1, 6, 6), 4, seed=3)
    assert torch.equal(model[1].weight, again[1].weight)  # the seed alone decides the init


def test_teacher_learns_the_toy_problem_and_loss_falls():
    data = toy_data()
    teacher = build_model(LINEAR, data.image_shape, data.num_classes, seed=0)
    losses = fit(teacher, data.train_x, data.train_y,
                 TeacherTraining(lr=0.5, batch_size=20, epochs=20), seed=0)
    assert len(losses) == 20 and losses[-1] < losses[0] / 3
    assert evaluate(teacher, data.test_x, data.test_y, data.num_classes).accuracy > 0.95


def test_training_is_deterministic_for_a_seed():
    data = toy_data()
    first, second = trained_teacher(data, MLP), trained_teacher(data, MLP)
    assert torch.equal(first.output_layer.weight, second.output_layer.weight)


def test_divergence_raises_at_once():
    data = toy_data()
    teacher = build_model(LINEAR, data.image_shape, data.num_classes, seed=0)
    with pytest.raises(DivergenceError, match="teacher"):
        fit(teacher, data.train_x * 1e30, data.train_y,
            TeacherTraining(lr=1e30, batch_size=20, epochs=3), seed=0)
    student = build_model(LINEAR, data.image_shape, data.num_classes, seed=0)
    with pytest.raises(DivergenceError, match="student"):
        distill(student, data.train_x[:4] * 100, torch.randn(4, 4) * 100,
                StudentTraining(lr=100.0, steps=200))


def test_linear_class_visualization_is_parallel_to_the_teachers_weight_row():
    data = toy_data()
    teacher = trained_teacher(data)
    images = class_vis(teacher, data, ClassVisSettings(l2=0.05, lr=0.5, steps=5000, tol=1e-7))
    weights = teacher.output_layer.weight.detach()
    cosine = torch.nn.functional.cosine_similarity(images.images.flatten(1), weights, dim=1)
    assert torch.all(cosine > 0.99999)
    # the optimum of w.I + b - l2 |I|^2 is I = w / (2 l2)
    assert torch.allclose(images.images.flatten(1), weights / 0.1, rtol=1e-3, atol=1e-4)
    assert images.labels.tolist() == [0, 1, 2, 3]
    assert images.info["steps"] < 5000  # the convergence stop ended the ascent
    # the teacher's parameters are frozen during extraction and left trainable afterwards
    assert all(p.requires_grad for p in teacher.parameters())


def test_zero_initialised_linear_student_recovers_the_teacher():
    data = toy_data()
    teacher, images, targets, student = distillation_setup(data)
    losses = distill(student, images.images, targets, StudentTraining(lr=0.1, steps=3000))
    assert losses[-1] < 1e-8
    with torch.no_grad():
        assert torch.equal(student(data.test_x).argmax(1), teacher(data.test_x).argmax(1))
        assert torch.allclose(student(data.test_x), teacher(data.test_x), atol=1e-3)


def test_student_stops_once_loss_reaches_tol():
    data = toy_data()
    teacher, images, targets, student = distillation_setup(data)
    losses = distill(student, images.images, targets, StudentTraining(steps=5000, tol=1e-4))
    assert losses[-1] <= 1e-4 < losses[-2] and len(losses) < 5000


@pytest.mark.parametrize("optimizer,loss", [("sgd", "kl"), ("lbfgs", "mse"), ("adam", "mse")])
def test_other_student_recipes_fit_the_soft_targets(optimizer, loss):
    data = toy_data()
    teacher, images, targets, student = distillation_setup(data)
    lr = {"sgd": 0.5, "lbfgs": 1.0, "adam": 0.01}[optimizer]
    losses = distill(student, images.images, targets,
                     StudentTraining(optimizer=optimizer, lr=lr, steps=300, loss=loss,
                                     temperature=2.0))
    assert losses[-1] < 0.05 * losses[0]
    with torch.no_grad():
        assert torch.equal(student(images.images).argmax(1), images.labels)


def test_class_average_is_the_mean_training_image_of_each_class():
    train_x = torch.tensor([[[[0.0, 1.0]]], [[[1.0, 1.0]]], [[[0.5, 0.0]]]])
    data = ImageData("tiny", ["a", "b"], train_x, torch.tensor([0, 0, 1]), train_x,
                     torch.tensor([0, 0, 1]))
    result = class_average(None, data, NoSettings())
    assert torch.equal(result.images, torch.tensor([[[[0.5, 1.0]]], [[[0.5, 0.0]]]]))
    assert result.labels.tolist() == [0, 1]


def test_class_average_refuses_a_class_without_images():
    data = toy_data(classes=3)
    data.train_y[data.train_y == 2] = 0
    with pytest.raises(ConfigError, match="none for \\['c2'\\]"):
        class_average(None, data, NoSettings())


def test_output_weights_are_the_weight_rows_as_images():
    data = toy_data()
    teacher = trained_teacher(data)
    result = output_weights(teacher, data, NoSettings())
    assert result.images.shape == (4, 1, 6, 6)
    assert torch.equal(result.images[2].flatten(), teacher.output_layer.weight[2].detach())
    with pytest.raises(ConfigError, match="without hidden layers"):
        output_weights(trained_teacher(data, MLP, epochs=1), data, NoSettings())


def test_evaluate_matches_hand_counts():
    class Fixed(torch.nn.Module):
        def forward(self, x):  # predicts class 0 for every image
            return torch.tensor([[1.0, 0.0, 0.0]]).repeat(len(x), 1)

    labels = torch.tensor([0, 0, 1, 2])
    result = evaluate(Fixed(), torch.zeros(4, 1, 2, 2), labels, 3)
    assert result.accuracy == 0.5
    assert result.confusion.tolist() == [[2, 0, 0], [1, 0, 0], [1, 0, 0]]
    assert result.precision.tolist() == [0.5, 0.0, 0.0]
    assert result.recall.tolist() == [1.0, 0.0, 0.0]
    assert math.isclose(result.f1[0], 2 / 3)
    assert result.support.tolist() == [2, 1, 1]


def test_mixup_targets_are_the_linear_teachers_logits_on_the_mixtures():
    from classvis.distill import mix

    data = toy_data()
    teacher = trained_teacher(data)
    images = extract(teacher, data, "class_vis", ClassVisSettings())
    targets = soft_targets(teacher, images.images)
    mixed, mixed_targets = mix(images.images, targets, 50, 1.0, 0, torch.Generator().manual_seed(0))
    assert mixed.shape == (50, 1, 6, 6)
    assert torch.allclose(soft_targets(teacher, mixed), mixed_targets, atol=1e-4)
    # with one-hot images a mixture's pixels are its mixing weights
    basis, labels = torch.eye(5).view(5, 1, 1, 5), torch.randn(5, 3)
    pairs, pair_targets = mix(basis, labels, 20, 1.0, 2, torch.Generator().manual_seed(0))
    weights = pairs.flatten(1)
    assert ((weights > 0).sum(1) <= 2).all() and torch.allclose(weights.sum(1), torch.ones(20))
    assert torch.allclose(pair_targets, weights @ labels, atol=1e-6)


@pytest.mark.parametrize("training,stays", [
    (StudentTraining(lr=0.3, steps=200, mixup=20, hidden_init="span"), True),
    (StudentTraining(lr=0.05, momentum=0.9, steps=200, hidden_init="span"), True),
    (StudentTraining(optimizer="lbfgs", lr=1.0, steps=20, hidden_init="span"), True),
    # Adam rescales each coordinate: the documented reason section10 trains with SGD
    (StudentTraining(optimizer="adam", lr=0.01, lr_scaling="none", steps=200,
                     hidden_init="span"), False),
])
def test_span_init_keeps_a_hidden_layer_student_blind_outside_the_images_span(training, stays):
    data = toy_data()
    teacher, images, targets, student = distillation_setup(data, MLP)
    norms = student[1].weight.norm(dim=1).clone()
    distill(student, images.images, targets, training, seed=0)
    flat = images.images.flatten(1)
    projector = flat.T @ torch.linalg.pinv(flat @ flat.T) @ flat
    first = student[1].weight.detach()
    # with SGD (momentum or not) and L-BFGS every row stays in the span
    assert torch.allclose(first @ projector, first, atol=1e-4) == stays
    fresh = build_model(MLP, data.image_shape, data.num_classes, seed=1)
    from classvis.distill import init_first_layer_in_span
    init_first_layer_in_span(fresh, images.images, seed=0)
    assert torch.allclose(fresh[1].weight.norm(dim=1), norms)


def test_the_curvature_of_a_large_set_comes_from_the_small_gram_matrix(monkeypatch):
    """Both Gram matrices give the same largest eigenvalue; a large set uses the one sized by
    the pixels, not by the images."""
    from classvis import distill as distill_module
    from classvis.distill import linear_curvature

    images = torch.rand(40, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    small = linear_curvature(images, 10)
    monkeypatch.setattr(distill_module, "LARGE_SET", 20)
    assert linear_curvature(images, 10) == pytest.approx(small, rel=1e-10)


def test_within_class_similarity_of_many_images_needs_no_k_by_k_matrix(monkeypatch):
    from classvis import priors
    from classvis.priors import within_class_similarity

    images = torch.rand(3 * 50, 1, 4, 4, generator=torch.Generator().manual_seed(0)) - 0.5
    exact = within_class_similarity(images, 50)
    monkeypatch.setattr(priors, "SIMILARITY_BUDGET", 100)
    assert torch.allclose(within_class_similarity(images, 50), exact, atol=1e-6)


@pytest.mark.parametrize("seed,classes,size", [(0, 10, 2000), (1, 3, 7), (2, 5, 40)])
def test_the_scores_are_scikit_learns_to_the_last_bit(seed, classes, size):
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    from classvis.evaluate import scores

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, size)
    predicted = np.where(rng.random(size) < 0.7, truth, rng.integers(0, classes - 1, size))
    predicted[predicted == 1] = 0  # class 1 never predicted: a zero division
    ours = scores(truth, predicted, classes)
    labels = list(range(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0)
    assert ours.accuracy == float(accuracy_score(truth, predicted))
    for mine, theirs in ((ours.precision, precision), (ours.recall, recall), (ours.f1, f1),
                         (ours.support, support)):
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)
    assert np.array_equal(ours.confusion, confusion_matrix(truth, predicted, labels=labels))
