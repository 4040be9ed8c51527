"""Metrics on the real test set, computed with scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


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


def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 10_000) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[i:i + batch_size]).argmax(1)
                          for i in range(0, len(images), batch_size)]).cpu().numpy()


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
             num_classes: int) -> Evaluation:
    truth = labels.cpu().numpy()
    predicted = predict(model, images)
    classes = list(range(num_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    return Evaluation(
        accuracy=float(accuracy_score(truth, predicted)),
        precision=precision, recall=recall, f1=f1, support=support,
        confusion=confusion_matrix(truth, predicted, labels=classes),
    )


def class_errors(confusion: np.ndarray, index: int) -> tuple[int, int]:
    """(false positives, false negatives) of class ``index`` in a confusion matrix whose rows are
    the true classes and columns the predicted ones."""
    hits = int(confusion[index, index])
    return int(confusion[:, index].sum()) - hits, int(confusion[index, :].sum()) - hits
