"""How far the synthetic set is from the training records (config key ``privacy``).

The paper calls class visualizations an anonymized version of the training data; this measures
it. For every synthetic image: the Euclidean distance (pixel space, as the models see it) to its
nearest training image. The yardstick is the same distance for real held-out test images, which
are genuine samples of the data yet not training records:

    distance_ratio = median(synthetic -> nearest train) / median(test -> nearest train)

A ratio near 0 means the synthetic images are (near-)copies of training images; around 1 they are
as close to the training set as fresh real data; well above 1 they are further from every
training record than real data is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from classvis.settings import positive


@dataclass(frozen=True)
class PrivacySettings:
    """``enabled``: measure every run's synthetic set. ``test_sample``: how many real test images
    (the first ones, so every run of a dataset uses the same) form the yardstick."""

    enabled: bool = True
    test_sample: int = 1000

    def check(self, key: str) -> None:
        positive(self.test_sample, f"{key}.test_sample", "an integer >= 1")


@dataclass
class Nearest:
    distances: torch.Tensor  # (M,) Euclidean distance to the nearest reference image
    indices: torch.Tensor    # (M,) its index in the reference set


@dataclass
class PrivacyResult:
    synthetic: Nearest
    test: Nearest

    @property
    def ratio(self) -> float:
        yardstick = float(self.test.distances.median())
        return float(self.synthetic.distances.median()) / max(yardstick, 1e-12)

    def metrics(self) -> dict[str, float]:
        synthetic, test = self.synthetic.distances, self.test.distances
        return {
            "privacy/nn_distance_median": float(synthetic.median()),
            "privacy/nn_distance_min": float(synthetic.min()),
            "privacy/nn_distance_mean": float(synthetic.mean()),
            "privacy/test_nn_distance_median": float(test.median()),
            "privacy/test_images": float(len(test)),
            "privacy/distance_ratio": self.ratio,
        }


def nearest(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 8192) -> Nearest:
    """For each query image, the nearest reference image (Euclidean), scanning the reference in
    chunks so memory stays at ``len(queries) * chunk`` distances.

    Candidates come from ``|q|^2 - 2 q.r + |r|^2`` (fast, one matrix product per chunk); the
    winner's distance is then computed directly, so an exact copy scores exactly 0."""
    q = queries.flatten(1).float()
    r = reference.flatten(1).float()
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query images have {q.shape[1]} values, reference images {r.shape[1]}")
    best = torch.full((len(q),), float("inf"))
    best_index = torch.zeros(len(q), dtype=torch.int64)
    q_norms = q.pow(2).sum(1, keepdim=True)
    for start in range(0, len(r), chunk):
        block = r[start:start + chunk]
        squared = q_norms - 2.0 * (q @ block.T) + block.pow(2).sum(1)
        values, where = squared.min(1)
        better = values < best
        best = torch.where(better, values, best)
        best_index = torch.where(better, where + start, best_index)
    distances = (q - r[best_index]).norm(dim=1)
    return Nearest(distances, best_index)


def measure(synthetic_images: torch.Tensor, train_x: torch.Tensor, test_x: torch.Tensor,
            settings: PrivacySettings = PrivacySettings()) -> PrivacyResult:
    """Nearest-training-image distances of the synthetic images and of the yardstick test images."""
    return PrivacyResult(nearest(synthetic_images, train_x),
                         nearest(test_x[:settings.test_sample], train_x))
