"""Metrics on the real test set: accuracy, per-class precision, recall and F1, the confusion
matrix. The arithmetic of scikit-learn's ``accuracy_score``, ``precision_recall_fscore_support``
(``zero_division=0``) and ``confusion_matrix``, to the last bit, without importing scikit-learn
(1.8 s of a run's start); tests/test_numeric.py compares the two."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Evaluation:
    accuracy: float
    precision: np.ndarray   # per class
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray   # rows: true class, columns: predicted class

    def per_class(self, class_names: list[str]) -> list[dict[str, float | str]]:
        return [
            {"class": name, "precision": float(p), "recall": float(r), "f1": float(f),
             "support": int(s)}
            for name, p, r, f, s in zip(class_names, self.precision, self.recall, self.f1,
                                        self.support, strict=True)
        ]


# values (pixels) scored at once: bounds the memory a batch of large images takes (10,000
# MNIST or CIFAR-10 images fit; a 224 x 224 network is scored 222 images at a time)
BATCH_VALUES = 2**25


def batch_for(images: torch.Tensor, batch_size: int) -> int:
    """``batch_size``, or fewer where that many images would exceed ``BATCH_VALUES``."""
    return max(1, min(batch_size, BATCH_VALUES // max(1, images[0].numel() if len(images)
                                                       else 1)))


def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 10_000) -> np.ndarray:
    batch_size = batch_for(images, batch_size)
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[i:i + batch_size]).argmax(1)
                          for i in range(0, len(images), batch_size)]).cpu().numpy()


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
             num_classes: int) -> Evaluation:
    return scores(labels.cpu().numpy(), predict(model, images), num_classes)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` in float64, 0 where the denominator is 0."""
    safe = np.where(denominator == 0, 1.0, denominator.astype(np.float64))
    return np.where(denominator == 0, 0.0, numerator.astype(np.float64) / safe)


def scores(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> Evaluation:
    """The metrics of ``predicted`` class indices against ``truth``, classes 0..num_classes-1."""
    confusion = np.bincount(truth.astype(np.int64) * num_classes + predicted.astype(np.int64),
                            minlength=num_classes * num_classes
                            ).reshape(num_classes, num_classes)
    hits = np.diagonal(confusion).copy()
    true_sum, predicted_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    return Evaluation(
        accuracy=float(np.mean(truth == predicted)) if len(truth) else 0.0,
        precision=_divide(hits, predicted_sum), recall=_divide(hits, true_sum),
        f1=_divide(2.0 * hits, true_sum.astype(np.float64) + predicted_sum), support=true_sum,
        confusion=confusion)


def class_errors(confusion: np.ndarray, index: int) -> tuple[int, int]:
    """(false positives, false negatives) of class ``index`` in a confusion matrix whose rows are
    the true classes and columns the predicted ones."""
    hits = int(confusion[index, index])
    return int(confusion[:, index].sum()) - hits, int(confusion[index, :].sum()) - hits


VIEWS_PER_IMAGE = 8   # held-out views of each synthetic image the agreement is measured on
MOST_VIEWS = 20_000   # at most this many views in all (a large set gets fewer per image)


@dataclass
class Agreement:
    """What a run can measure without a real test set: how often the student's class is the
    teacher's, on the synthetic images and on views of them the student never saw (shifted,
    scaled and rotated with a seed of their own), and the teacher's confidence in each class's
    images (its mean softmax probability of the class they stand for)."""

    synthetic: float
    views: float
    confidence: np.ndarray  # per class

    def per_class(self, class_names: list[str]) -> list[dict[str, float | str]]:
        return [{"class": name, "teacher_confidence": float(value)}
                for name, value in zip(class_names, self.confidence, strict=True)]


def agreement(student: torch.nn.Module, teacher: torch.nn.Module, images: torch.Tensor,
              labels: torch.Tensor, num_classes: int, seed: int) -> Agreement:
    """The student's agreement with the teacher on ``images`` and on held-out views of them,
    and the teacher's confidence per class (``labels``: the class each image stands for)."""
    from classvis.augment import affine

    generator = torch.Generator().manual_seed(seed)
    repeats = max(1, min(VIEWS_PER_IMAGE, MOST_VIEWS // max(1, len(images))))
    chunk = max(1, batch_for(images, 10_000) // repeats)
    same_views = []
    for start in range(0, len(images), chunk):  # views made and scored a chunk at a time
        views = affine(images[start:start + chunk].repeat(repeats, 1, 1, 1),
                       ("shift", "scale", "rotate"), generator)
        same_views.append(predict(student, views) == predict(teacher, views))
    teacher.eval()
    with torch.no_grad():  # the teacher scores the images once: its classes and confidence
        step = batch_for(images, 10_000)
        probabilities = torch.cat([teacher(images[i:i + step]).softmax(1)
                                   for i in range(0, len(images), step)])
    on_images = float((predict(student, images)
                       == probabilities.argmax(1).cpu().numpy()).mean())
    on_views = float(np.concatenate(same_views).mean())
    chosen = probabilities.gather(1, labels.view(-1, 1)).flatten().cpu()
    counts = torch.bincount(labels.cpu(), minlength=num_classes).clamp(min=1)
    confidence = torch.zeros(num_classes).index_add_(0, labels.cpu(), chosen) / counts
    return Agreement(on_images, on_views, confidence.numpy())
