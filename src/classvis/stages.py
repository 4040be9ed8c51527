"""The stages of a run, one function each (teacher, extraction, student, swap) and what they share:
a seed per stage, wall time per stage, the provenance a synthetic set records. No tracking and no
config framework in here; ``pipeline.run`` puts them in order."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

from classvis import __version__
from classvis import runkeys as keys
from classvis.data import ImageData, load_dataset
from classvis.datafiles import cached_tensors, derived_cache_path
from classvis.distill import distill
from classvis.evaluate import evaluate
from classvis.extract import Extraction, extract, soft_targets
from classvis.fit import fit
from classvis.given_teacher import load_given
from classvis.loaders import known_class_names
from classvis.models import ArchitectureSettings, ClassSubset, build_model
from classvis.privacy import Nearest, yardstick
from classvis.privacy import code_version as privacy_code_version
from classvis.progress import QUIET, Progress
from classvis.runsettings import RunSettings
from classvis.swap import SwappedSet, SwapSettings, swap_class
from classvis.teacher_cache import ObtainedTeacher, obtain_teacher, teacher_key


def stage_seed(seed: int, stage: str) -> int:
    """An independent, reproducible seed per stage, so one stage's randomness never shifts
    another's (and a teacher depends on nothing but its own settings and seed)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stage}".encode()).digest()[:4], "little")


@dataclass
class SwapOutcome:
    """The swap experiment: the donor's data and teacher, both synthetic sets, and the student
    trained on the unswapped set for comparison."""

    settings: SwapSettings
    donor_data: ImageData
    donor_teacher: nn.Module
    donor_origin: str
    donor_key: str
    donor_images: Extraction
    base_images: Extraction
    swapped: SwappedSet
    base_class: int
    baseline_student: nn.Module


@contextmanager
def timed(seconds: dict[str, float], stage: str):
    start = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - start


def obtain_run_teacher(settings: RunSettings, data: ImageData,
             on_epoch: Callable[[int, float], None] | None = None,
             progress: Progress = QUIET, what: str = "teacher") -> ObtainedTeacher:
    """The run's teacher for ``data``: the given weights (``teacher_from=weights``), else from
    the cache, or trained (and cached)."""
    if settings.given_weights is not None:
        given = settings.given_weights
        keep = settings.teacher_outputs
        scored = data.num_classes if keep is None else len(
            known_class_names(settings.dataset) or ())
        model = load_given(build_model(settings.teacher, data.image_shape, scored,
                                       stage_seed(settings.seed, "teacher/init")), given)
        if keep is not None:  # the run's classes among the teacher's own
            model = ClassSubset(model, keep)
        return ObtainedTeacher(model.to(settings.device), [], settings.teacher_from.kind,
                               given.digest)
    key, material = teacher_key(data, settings.teacher, settings.trainer.teacher, settings.seed)
    recipe = settings.trainer.teacher

    def train(model):
        with progress.bar(f"{what} ({data.name})", recipe.total_epochs(len(data.train_x)),
                          unit="epoch") as bar:
            def epoch_done(epoch: int, loss: float) -> None:
                bar(epoch, loss)
                if on_epoch is not None:
                    on_epoch(epoch, loss)
            return fit(model, data.train_x, data.train_y, recipe,
                       stage_seed(settings.seed, "teacher/order"), epoch_done)

    return obtain_teacher(
        settings.teacher_cache, data, key, material,
        build=lambda: build_model(settings.teacher, data.image_shape, data.num_classes,
                                  stage_seed(settings.seed, "teacher/init")).to(settings.device),
        train=train,
    )


def extract_images(settings: RunSettings, teacher: nn.Module, data: ImageData, progress: Progress,
             what: str = "extract") -> Extraction:
    progress_steps = getattr(settings.extractor, "progress_steps", None)
    steps = progress_steps(data.num_classes) if progress_steps is not None else 1
    with progress.bar(f"{what} ({settings.extractor_name})", steps) as bar:
        return extract(teacher, data, settings.extractor_name, settings.extractor,
                       stage_seed(settings.seed, "extract"), bar)


def student_architecture(settings: RunSettings) -> ArchitectureSettings:
    """What the student is built as: the teacher's architecture when it starts from the
    teacher's initial weights."""
    if settings.trainer.student.start == "teacher_init":
        return settings.teacher
    return settings.student


def train_student(settings: RunSettings, data_shape: tuple[int, ...], num_classes: int, images,
             targets, progress: Progress = QUIET, what: str = "student",
             teacher: nn.Module | None = None) -> tuple[nn.Module, nn.Module, list[float]]:
    # teacher_init: the teacher's exact starting weights
    stage = "teacher/init" if settings.trainer.student.start == "teacher_init" else "student/init"
    student = build_model(student_architecture(settings), data_shape, num_classes,
                          stage_seed(settings.seed, stage))
    student.to(settings.device)
    untrained = copy.deepcopy(student)
    with progress.bar(what, settings.trainer.student.steps) as bar:
        losses = distill(student, images, targets, settings.trainer.student,
                         stage_seed(settings.seed, "student/order"), bar, teacher)
    return student, untrained, losses


def swap_stage(settings: RunSettings, data: ImageData, teacher: nn.Module,
          base: Extraction, base_targets, progress: Progress = QUIET) -> SwapOutcome:
    donor_data = load_dataset(settings.swap.donor_dataset(settings.dataset),
                              stage_seed(settings.seed, "data/balance")).to(settings.device)
    donor = obtain_run_teacher(settings, donor_data, progress=progress, what="donor teacher")
    donor_images = extract_images(settings, donor.model, donor_data, progress, "extract from donor")
    base_class = data.class_names.index(str(settings.swap.replace))
    donor_class = donor_data.class_names.index(str(settings.swap.replace))
    incoming = donor_images.images[donor_images.labels == donor_class]
    donor_targets = (soft_targets(teacher, incoming) if settings.swap.targets == "teacher"
                     else None)
    swapped = swap_class(base, base_targets, donor_images, base_class, donor_class,
                         donor_targets)
    baseline, _, _ = train_student(settings, data.image_shape, data.num_classes, base.images,
                              base_targets, progress, "baseline student", teacher)
    return SwapOutcome(settings.swap, donor_data, donor.model, donor.origin, donor.key,
                       donor_images, base, swapped, base_class, baseline)


def view_accuracies(models: dict[str, torch.nn.Module], data: ImageData) -> dict[str, float]:
    """Each model's accuracy on each further view of the test set (one-vs-rest: the full and the
    balanced test set), as ``<model>/<view>_test_accuracy``."""
    return {keys.measure(name, f"{view}_test_accuracy"):
            evaluate(model, x, y, data.num_classes).accuracy
            for view, (x, y) in data.test_views.items() for name, model in models.items()}


def provenance(settings: RunSettings, teacher_accuracy: float, teacher_parameters: int,
                key: str) -> dict[str, str]:
    """What a synthetic set file records about its origin (strings, for the safetensors header)."""
    source = {k: v for k, v in asdict(settings.dataset).items()
              if k not in ("cache", "cache_dir", "download", "path", "test_root")}
    return {
        "dataset": settings.dataset_label, "extractor": settings.extractor_label,
        "extractor_name": settings.extractor_name,
        "extractor_settings": json.dumps(asdict(settings.extractor)),
        "per_class": str(settings.per_class),
        "teacher": settings.teacher.label, "seed": str(settings.seed),
        "teacher_accuracy": repr(teacher_accuracy),
        "teacher_parameters": str(teacher_parameters),
        "teacher_key": key,
        "teacher_architecture": json.dumps(asdict(settings.teacher)),
        "teacher_from": settings.teacher_from.kind,  # weights: teacher_key is their digest
        "teacher_training": json.dumps(asdict(settings.trainer.teacher)),
        "source_dataset": json.dumps(source),
        "classvis_version": __version__,
    }


def privacy_yardstick(settings: RunSettings, data: ImageData) -> Nearest:
    """The privacy measure's yardstick (the test images' distances to the training set): the
    same for every run of a dataset and the most of the measure's cost (1000 test images
    against 60000 training images for MNIST), so kept beside the dataset's decoded cache, keyed
    by what determines it."""
    material = {
        "data": data.fingerprint, "classes": data.class_names,
        "train": list(data.train_x.shape), "test": list(data.test_x.shape),
        "test_sample": settings.privacy.test_sample, "device": data.train_x.device.type,
        "code": privacy_code_version(),
        "torch": torch.__version__,
    }
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]
    tensors = cached_tensors(
        derived_cache_path(settings.dataset, data.fingerprint, f"privacy-{key}"), key,
        lambda: asdict(yardstick(data.train_x, data.test_x, settings.privacy)))
    return Nearest(**tensors)
