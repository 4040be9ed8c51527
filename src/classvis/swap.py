"""The swap experiment (config group ``swap``; the paper's Section 8): one class's images in a
synthetic set replaced by those a donor teacher (trained on a class subset, or one class against
the rest) extracted for the same class.

Plain bookkeeping over tensors: which image came from where, and which soft target it carries.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch

from classvis.data import DatasetSettings
from classvis.extract import Extraction
from classvis.validation import ConfigError, require

BASE, DONOR = "base", "donor"


@dataclass(frozen=True)
class SwapSettings:
    """``replace: null`` turns the experiment off. Otherwise the images of class ``replace`` come
    from a donor teacher trained on the same data restricted to ``donor_classes`` (e.g. [3, 4])
    or on ``donor_one_vs_rest`` (that class against all others), with the same architecture,
    recipe, extractor and seed as the base teacher; both teachers come from the teacher cache.

    ``targets: teacher`` scores the donor's images with the base teacher (every image keeps the
    base teacher's logits as soft targets); ``keep`` gives them the soft targets of the images
    they replace, i.e. tells the student "this is the base teacher's class c"."""

    replace: str | int | None = None
    donor_classes: tuple[str | int, ...] | None = None
    donor_one_vs_rest: str | int | None = None
    targets: Literal["teacher", "keep"] = "keep"

    def __post_init__(self) -> None:
        if self.replace is not None:
            object.__setattr__(self, "replace", str(self.replace))
        if self.donor_classes is not None:
            object.__setattr__(self, "donor_classes", tuple(str(c) for c in self.donor_classes))
        if self.donor_one_vs_rest is not None:
            object.__setattr__(self, "donor_one_vs_rest", str(self.donor_one_vs_rest))

    @property
    def enabled(self) -> bool:
        return self.replace is not None

    def check(self, key: str) -> None:
        if not self.enabled:
            return
        require((self.donor_classes is None) != (self.donor_one_vs_rest is None),
                f"{key}.donor_classes", "a class list, or donor_one_vs_rest, exactly one of them",
                self.donor_classes)
        if self.donor_classes is not None:
            require(self.replace in self.donor_classes, f"{key}.donor_classes",
                    f"a list containing the replaced class {self.replace!r}",
                    list(self.donor_classes))
        else:
            require(self.donor_one_vs_rest == self.replace, f"{key}.donor_one_vs_rest",
                    f"the replaced class {self.replace!r}", self.donor_one_vs_rest)

    @property
    def label(self) -> str:
        """``3 from 3-vs-4``, ``3 from 3-vs-rest``."""
        if self.donor_classes is not None:
            return f"{self.replace} from {'-vs-'.join(map(str, self.donor_classes))}"
        return f"{self.replace} from {self.replace}-vs-rest"

    def donor_dataset(self, base: DatasetSettings, key: str = "swap") -> DatasetSettings:
        if base.classes is not None or base.one_vs_rest is not None:
            raise ConfigError(f"{key}.replace", "a base dataset with all its classes "
                              "(dataset.classes and dataset.one_vs_rest null)", self.replace)
        return replace(base, classes=self.donor_classes, one_vs_rest=self.donor_one_vs_rest)


@dataclass
class SwappedSet:
    images: torch.Tensor
    labels: torch.Tensor
    soft_targets: torch.Tensor
    origin: list[str]            # per image: "base" or "donor"
    replaced: torch.Tensor       # indices of the swapped images in the set


def swap_class(base: Extraction, base_targets: torch.Tensor, donor: Extraction,
               base_class: int, donor_class: int, donor_targets: torch.Tensor | None
               ) -> SwappedSet:
    """Replace every base image of ``base_class`` by the donor's images of ``donor_class`` (the
    same count). ``donor_targets`` are the soft targets the donor images carry; ``None`` keeps
    the replaced images' own targets."""
    replaced = torch.nonzero(base.labels == base_class).flatten()
    incoming = torch.nonzero(donor.labels == donor_class).flatten()
    if len(replaced) != len(incoming) or len(replaced) == 0:
        raise ValueError(f"the donor has {len(incoming)} images of the class, the base set "
                         f"{len(replaced)}: they must match and be at least one")
    images = base.images.clone()
    images[replaced] = donor.images[incoming]
    targets = base_targets.clone()
    if donor_targets is not None:
        targets[replaced] = donor_targets
    origin = [BASE] * len(images)
    for index in replaced.tolist():
        origin[index] = DONOR
    return SwappedSet(images, base.labels.clone(), targets, origin, replaced)
