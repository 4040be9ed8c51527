"""Datasets as small in-memory containers of tensors (config group ``dataset``).

``load_dataset`` returns an ``ImageData``: float32 images in [0, 1] shaped (N, C, H, W), int64
labels and class names, with the config's class subset or one-vs-rest task applied. Reading the
files and the decoded-pixel cache live in ``classvis.datafiles``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch

from classvis.datafiles import load_arrays
from classvis.loaders import given
from classvis.loaders.torchvision_files import TORCHVISION_CLASSES
from classvis.validation import require, writable_folder


@dataclass(frozen=True)
class DatasetSettings:
    name: str
    loader: Literal["torchvision", "digits", "image_folder", "synthetic", "none"]
    root: str | None = None
    torchvision_class: str | None = None
    download: bool = False
    class_names: tuple[str, ...] | None = None
    classes: tuple[str | int, ...] | None = None  # ints allowed: dataset.classes=[3,4]
    one_vs_rest: str | int | None = None
    # one_vs_rest: which sets keep only as many negatives as positives (drawn with the run's seed)
    one_vs_rest_balance: Literal["none", "train", "train_and_test"] = "none"
    cache: bool = True
    cache_dir: str | None = None
    # loader synthetic: a file written by ``classvis export`` (or a run's synthetic_set artifact),
    # and where the real test set of the dataset it came from lies here (null: as recorded)
    path: str | None = None
    test_root: str | None = None
    allow_undigested: bool = False  # read a file without a sha256 digest (with a warning)
    # which splits to load: both, the test split alone (a given teacher needs no training set),
    # or auto (both when a teacher is trained here or the training files are present, else the
    # test split); resolved at the door
    splits: Literal["auto", "train_and_test", "test"] = "auto"
    # loader none (dataset=none): no images at all, only the shape and classes the teacher takes
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(str(name) for name in self.classes))
        if self.one_vs_rest is not None:
            object.__setattr__(self, "one_vs_rest", str(self.one_vs_rest))

    def check(self, key: str) -> None:
        require(bool(self.name), f"{key}.name", "a non-empty name", self.name)
        if self.classes is not None:
            require(len(self.classes) >= 2 and len(set(self.classes)) == len(self.classes),
                    f"{key}.classes", "at least two distinct class names", list(self.classes))
            if self.class_names is not None:
                check_class_names(self.classes, list(self.class_names), f"{key}.classes")
        if self.one_vs_rest is not None:
            require(self.classes is None, f"{key}.one_vs_rest",
                    "null when dataset.classes is set (use one or the other)", self.one_vs_rest)
            if self.class_names is not None:
                check_class_names([self.one_vs_rest], list(self.class_names),
                                  f"{key}.one_vs_rest")
        if self.cache and self.cache_dir is not None and self.loader != "synthetic":
            writable_folder(self.cache_dir, f"{key}.cache_dir")
        if self.loader == "synthetic":  # its header is read (and checked) by run_settings
            require(self.path is not None, f"{key}.path", "a synthetic set file (classvis export)",
                    None)
            require(Path(str(self.path)).is_file(), f"{key}.path", "an existing file", self.path)
        if self.loader == "torchvision":
            require(
                self.torchvision_class in TORCHVISION_CLASSES,
                f"{key}.torchvision_class",
                "one of " + ", ".join(TORCHVISION_CLASSES),
                self.torchvision_class,
            )
        if self.loader == "none":
            require(self.splits == "auto", f"{key}.splits", "auto with dataset=none (it has "
                    "no splits)", self.splits)
            if self.image_shape is not None:
                require(all(size >= 1 for size in self.image_shape), f"{key}.image_shape",
                        "[channels, height, width], each >= 1", list(self.image_shape))
        else:
            require(self.image_shape is None, f"{key}.image_shape", "null unless dataset=none "
                    "(the images' shape comes from the files)", self.image_shape)
        if self.loader in ("torchvision", "image_folder"):
            root = Path(given(self.root, f"{key}.root", "a data directory"))
            if self.loader == "image_folder":
                for split in ("train", "test") if self.splits == "train_and_test" else ("test",):
                    require(
                        (root / split).is_dir(),
                        f"{key}.root",
                        f"a folder holding {split}/<class>/<images>",
                        str(root),
                    )


@dataclass
class ImageData:
    """A labelled image dataset held in memory."""

    name: str
    class_names: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    fingerprint: str = ""  # identifies the source data (keys caches of models trained on it)
    # further views of the test set to evaluate on, by name (one-vs-rest: "full" and "balanced")
    test_views: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_train(self) -> bool:
        """Whether it holds a training split (not with a test split alone, or dataset=none)."""
        return len(self.train_x) > 0

    @property
    def has_test(self) -> bool:
        return len(self.test_x) > 0

    def to(self, device: str | torch.device) -> ImageData:
        """The same dataset with every tensor on ``device`` (itself when they already are)."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        views = {name: (x.to(device), y.to(device)) for name, (x, y) in self.test_views.items()}
        return replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                       test_x=self.test_x.to(device), test_y=self.test_y.to(device),
                       test_views=views)


SHOWN_NAMES = 20  # class names an error lists (a 1,000-class teacher's would fill a screen)


def check_class_names(wanted, known: list[str], key: str) -> None:
    unknown = [name for name in wanted if str(name) not in known]
    shown = ", ".join(known[:SHOWN_NAMES]) + (f", ... ({len(known)} in all)"
                                              if len(known) > SHOWN_NAMES else "")
    require(not unknown, key, "class names among " + shown, unknown[0] if unknown else None)


def _keep_classes(images: torch.Tensor, labels: torch.Tensor, keep: list[int]):
    """Only the images of classes ``keep``, relabelled 0..len(keep)-1 in that order."""
    size = max([*keep, int(labels.max()) if len(labels) else 0]) + 1  # a split may be empty
    relabel = torch.full((size,), -1, dtype=torch.int64)
    relabel[torch.tensor(keep)] = torch.arange(len(keep))
    new_labels = relabel[labels]
    mask = new_labels >= 0
    return images[mask], new_labels[mask]


def _balanced_subset(labels: torch.Tensor, positive: int,
                     generator: torch.Generator) -> torch.Tensor:
    """Indices of every image of class ``positive`` and of a random subset of the others as large
    as the positive class (all of them if there are fewer), in their original order."""
    positives = torch.nonzero(labels == positive).flatten()
    negatives = torch.nonzero(labels != positive).flatten()
    chosen = negatives[torch.randperm(len(negatives), generator=generator)[:len(positives)]]
    return torch.cat([positives, chosen.sort().values])


def _one_vs_rest(images: torch.Tensor, labels: torch.Tensor, positive: int,
                 keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class ``positive`` (label 0) against all others (label 1), the images ``keep`` (None:
    every image, positives first, as in a balanced subset)."""
    if keep is None:
        keep = torch.cat([torch.nonzero(labels == positive).flatten(),
                          torch.nonzero(labels != positive).flatten()])
    return images[keep], (labels[keep] != positive).long()


def load_dataset(settings: DatasetSettings, seed: int = 0) -> ImageData:
    """Load a dataset into memory as float32 tensors in [0, 1].

    ``seed`` draws the negatives that ``one_vs_rest`` keeps in a balanced set; a one-vs-rest
    dataset is evaluated on its full and its balanced test set alike (``test_views``)."""
    if settings.loader == "synthetic":
        raise ValueError("a synthetic set is not loaded as a dataset: pipeline.run trains the "
                         "student from the file directly")
    (train_x, train_y, test_x, test_y, class_names), fingerprint = load_arrays(settings)
    if settings.class_names is not None:
        require(
            len(settings.class_names) == len(class_names),
            "dataset.class_names",
            f"{len(class_names)} names (one per class of {settings.name})",
            list(settings.class_names),
        )
        class_names = list(settings.class_names)
    if settings.classes is not None:
        check_class_names(settings.classes, class_names, "dataset.classes")
        keep = [class_names.index(str(name)) for name in settings.classes]
        train_x, train_y = _keep_classes(train_x, train_y, keep)
        test_x, test_y = _keep_classes(test_x, test_y, keep)
        class_names = [str(name) for name in settings.classes]
    test_views: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if settings.one_vs_rest is not None:
        check_class_names([settings.one_vs_rest], class_names, "dataset.one_vs_rest")
        positive = class_names.index(str(settings.one_vs_rest))
        generator = torch.Generator().manual_seed(seed)
        # both balanced subsets are drawn whatever the setting, so each is the same in every run
        balanced_train = _balanced_subset(train_y, positive, generator)
        balanced_test = _balanced_subset(test_y, positive, generator)
        full_x, full_y = _one_vs_rest(test_x, test_y, positive, None)
        small_x, small_y = _one_vs_rest(test_x, test_y, positive, balanced_test)
        balance = settings.one_vs_rest_balance
        train_x, train_y = _one_vs_rest(train_x, train_y, positive,
                                        None if balance == "none" else balanced_train)
        full_x, small_x = full_x.float().div_(255.0), small_x.float().div_(255.0)
        test_views = {"full": (full_x, full_y), "balanced": (small_x, small_y)}
        test_x, test_y = test_views["balanced" if balance == "train_and_test" else "full"]
        class_names = [str(settings.one_vs_rest), f"not {settings.one_vs_rest}"]
        material = f"{fingerprint}|one_vs_rest|{settings.one_vs_rest}|{seed}"
        if balance != "train_and_test":  # the balanced train-and-test keys stay as they were
            material += f"|balance={balance}"
        fingerprint = hashlib.sha256(material.encode()).hexdigest()[:16]
    return ImageData(
        name=settings.name,
        class_names=list(class_names),
        train_x=train_x.float().div_(255.0),
        train_y=train_y,
        test_x=test_x if test_x.is_floating_point() else test_x.float().div_(255.0),
        test_y=test_y,
        fingerprint=fingerprint,
        test_views=test_views,
    )
