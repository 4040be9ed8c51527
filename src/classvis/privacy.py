"""How far the synthetic set is from the training records (config key ``privacy``).

The paper calls class visualizations an anonymized version of the training data; this measures
it. For every synthetic image: the Euclidean distance (pixel space, as the models see it) to its
nearest training image. The yardstick is the same distance for real held-out test images, which
are genuine samples of the data yet not training records:

    distance_ratio = median(synthetic -> nearest train) / median(test -> nearest train)

A ratio near 0 means the synthetic images are (near-)copies of training images; around 1 they are
as close to the training set as fresh real data; well above 1 they are further from every
training record than real data is.

Distance alone can mislead: a low-contrast image near the data's mean (a class average, or a
visualization with a strong L2 penalty on a dataset of high-contrast images) lies close to the
dimmest training images without resembling any of them. So each image's nearest-neighbour
distance ratio (NNDR: nearest over second-nearest training distance) is kept too: a copy of one
record scores about 0, an image that is no closer to its nearest record than to the next about 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from classvis import runkeys as keys
from classvis.validation import positive


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
    second: torch.Tensor     # (M,) distance to the second nearest (inf with one reference image)

    @property
    def distance_ratio(self) -> torch.Tensor:
        """Nearest over second-nearest distance per image (NNDR): about 0 for a copy of one
        record, about 1 when the nearest record is no closer than the next one."""
        return self.distances / self.second.clamp_min(1e-12)


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
            keys.privacy("nn_distance_median"): float(synthetic.median()),
            keys.privacy("nn_distance_min"): float(synthetic.min()),
            keys.privacy("nn_distance_mean"): float(synthetic.mean()),
            keys.privacy("test_nn_distance_median"): float(test.median()),
            keys.privacy("test_images"): float(len(test)),
            keys.DISTANCE_RATIO: self.ratio,
            keys.privacy("nndr_median"): float(self.synthetic.distance_ratio.median()),
            keys.privacy("nndr_min"): float(self.synthetic.distance_ratio.min()),
            keys.privacy("test_nndr_median"): float(self.test.distance_ratio.median()),
            keys.privacy("distinct_nearest"): float(len(torch.unique(self.synthetic.indices))),
        }


DISTANCE_BUDGET = 1 << 26  # distances held at once (256 MB of float32), whatever the set sizes


def nearest(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 8192) -> Nearest:
    """For each query image, the nearest and second-nearest reference images (Euclidean),
    scanning the reference in chunks of ``chunk`` and the queries in blocks, so memory stays at
    ``DISTANCE_BUDGET`` distances however many images either side has.

    Candidates come from ``|q|^2 - 2 q.r + |r|^2`` (fast, one matrix product per chunk); the
    winners' distances are then computed directly, so an exact copy scores exactly 0."""
    q = queries.flatten(1).float()
    r = reference.flatten(1).float()
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query images have {q.shape[1]} values, reference images {r.shape[1]}")
    if len(r) == 0:
        raise ValueError("no reference images to compare with")
    block = max(1, DISTANCE_BUDGET // min(chunk, len(r)))
    found = [_nearest_block(q[start:start + block], r, chunk)
             for start in range(0, len(q), block)]
    return Nearest(*(torch.cat(parts) for parts in zip(*found, strict=True)))


def _nearest_block(q: torch.Tensor, r: torch.Tensor, chunk: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    best = torch.full((len(q), 2), float("inf"), device=q.device)
    best_index = torch.zeros(len(q), 2, dtype=torch.int64, device=q.device)
    q_norms = q.pow(2).sum(1, keepdim=True)
    for start in range(0, len(r), chunk):
        block = r[start:start + chunk]
        squared = q_norms - 2.0 * (q @ block.T) + block.pow(2).sum(1)
        values, where = squared.topk(min(2, len(block)), dim=1, largest=False)
        merged = torch.cat([best, values], dim=1)
        merged_index = torch.cat([best_index, where + start], dim=1)
        order = merged.argsort(dim=1)[:, :2]
        best, best_index = merged.gather(1, order), merged_index.gather(1, order)
    distances = (q - r[best_index[:, 0]]).norm(dim=1)
    second = (q - r[best_index[:, 1]]).norm(dim=1) if len(r) > 1 else torch.full(
        (len(q),), float("inf"), device=q.device)
    # on the CPU, where the figures and tables that use them are made
    return distances.cpu(), best_index[:, 0].cpu(), second.cpu()


def code_version() -> str:
    """A digest of the code that finds nearest images: editing it misses a kept yardstick."""
    import hashlib
    import inspect

    source = inspect.getsource(nearest) + inspect.getsource(_nearest_block)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def yardstick(train_x: torch.Tensor, test_x: torch.Tensor,
              settings: PrivacySettings = PrivacySettings()) -> Nearest:
    """The nearest-training-image distances of the first ``test_sample`` real test images: the
    same for every run of a dataset (``pipeline`` keeps it beside the dataset's cache)."""
    return nearest(test_x[:settings.test_sample], train_x)


def measure(synthetic_images: torch.Tensor, train_x: torch.Tensor, test_x: torch.Tensor,
            settings: PrivacySettings = PrivacySettings(),
            test: Nearest | None = None) -> PrivacyResult:
    """Nearest-training-image distances of the synthetic images and of the yardstick test images
    (``test``: the ``yardstick``, if already known)."""
    return PrivacyResult(nearest(synthetic_images, train_x),
                         test if test is not None else yardstick(train_x, test_x, settings))
