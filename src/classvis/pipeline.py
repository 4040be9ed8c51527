"""The paper's protocol, stage by stage. No tracking and no config framework in here."""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from classvis.compress import Compressed, compress
from classvis.config import RunSettings
from classvis.data import ImageData, load_dataset
from classvis.evaluate import Evaluation, evaluate
from classvis.extract import SyntheticImages, extract, soft_targets
from classvis.fit import distill, fit
from classvis.models import Classifier, build_model, count_parameters
from classvis.swap import SwappedSet, SwapSettings, swap_class
from classvis.synthetic import SyntheticSet
from classvis.teacher_cache import Teacher, obtain_teacher, teacher_key


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
    donor_teacher: Classifier
    donor_source: str
    donor_key: str
    donor_images: SyntheticImages
    base_images: SyntheticImages
    swapped: SwappedSet
    base_class: int
    baseline_student: Classifier


@dataclass
class RunResult:
    data: ImageData
    teacher: Classifier
    student: Classifier
    synthetic: SyntheticSet
    evaluations: dict[str, Evaluation]     # "teacher", "student", "untrained", ...
    teacher_losses: list[float]            # per epoch
    teacher_source: str                    # "trained" or "cache"
    teacher_key: str
    student_losses: list[float]            # per step
    extraction_info: dict[str, float]
    parameters: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    swap: SwapOutcome | None = None
    compressed: Compressed | None = None


@contextmanager
def _timed(seconds: dict[str, float], stage: str):
    start = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - start


def _teacher(settings: RunSettings, data: ImageData,
             on_epoch: Callable[[int, float], None] | None = None) -> Teacher:
    """The run's teacher for ``data``: from the cache, or trained (and cached)."""
    key, material = teacher_key(data, settings.teacher, settings.trainer.teacher, settings.seed)
    return obtain_teacher(
        settings.teacher_cache, data, key, material,
        build=lambda: build_model(settings.teacher, data.image_shape, data.num_classes,
                                  stage_seed(settings.seed, "teacher/init")),
        train=lambda model: fit(model, data.train_x, data.train_y, settings.trainer.teacher,
                                stage_seed(settings.seed, "teacher/order"), on_epoch),
    )


def _student(settings: RunSettings, data: ImageData, images, targets) -> tuple[Classifier,
                                                                              Classifier,
                                                                              list[float]]:
    student = build_model(settings.student, data.image_shape, data.num_classes,
                          stage_seed(settings.seed, "student/init"))
    untrained = copy.deepcopy(student)
    losses = distill(student, images, targets, settings.trainer.student,
                     stage_seed(settings.seed, "student/order"))
    return student, untrained, losses


def _swap(settings: RunSettings, data: ImageData, teacher: Classifier,
          base: SyntheticImages, base_targets) -> SwapOutcome:
    donor_data = load_dataset(settings.swap.donor_dataset(settings.dataset),
                              stage_seed(settings.seed, "data/balance"))
    donor = _teacher(settings, donor_data)
    donor_images = extract(donor.model, donor_data, settings.extractor_name, settings.extractor,
                           stage_seed(settings.seed, "extract"))
    base_class = data.class_names.index(settings.swap.replace)
    donor_class = donor_data.class_names.index(settings.swap.replace)
    incoming = donor_images.images[donor_images.labels == donor_class]
    donor_targets = (soft_targets(teacher, incoming) if settings.swap.targets == "teacher"
                     else None)
    swapped = swap_class(base, base_targets, donor_images, base_class, donor_class,
                         donor_targets)
    baseline, _, _ = _student(settings, data, base.images, base_targets)
    return SwapOutcome(settings.swap, donor_data, donor.model, donor.source, donor.key,
                       donor_images, base, swapped, base_class, baseline)


def run(settings: RunSettings,
        on_teacher_epoch: Callable[[int, float], None] | None = None) -> RunResult:
    seconds: dict[str, float] = {}
    with _timed(seconds, "load"):
        data = load_dataset(settings.dataset, stage_seed(settings.seed, "data/balance"))
    with _timed(seconds, "teacher"):
        obtained = _teacher(settings, data, on_teacher_epoch)
        teacher, teacher_losses = obtained.model, obtained.epoch_losses
    with _timed(seconds, "extract"):
        extracted = extract(teacher, data, settings.extractor_name, settings.extractor,
                            stage_seed(settings.seed, "extract"))
        targets = soft_targets(teacher, extracted.images)
    swap = None
    images, labels = extracted.images, extracted.labels
    if settings.swap.enabled:
        with _timed(seconds, "swap"):
            swap = _swap(settings, data, teacher, extracted, targets)
        images, targets = swap.swapped.images, swap.swapped.soft_targets
    with _timed(seconds, "student"):
        student, untrained, student_losses = _student(settings, data, images, targets)
    compressed = None
    if settings.compress.enabled:
        with _timed(seconds, "compress"):
            compressed = compress(images, labels, data.num_classes, data.train_x, data.train_y,
                                  settings.compress, stage_seed(settings.seed, "compress/order"))
    with _timed(seconds, "evaluate"):
        models = {"teacher": teacher, "student": student, "untrained": untrained}
        if swap is not None:
            models["baseline_student"] = swap.baseline_student
        if compressed is not None:
            models["compressed"] = compressed.model
        evaluations = {name: evaluate(model, data.test_x, data.test_y, data.num_classes)
                       for name, model in models.items()}
        if swap is not None:
            evaluations["donor_teacher"] = evaluate(swap.donor_teacher, swap.donor_data.test_x,
                                                    swap.donor_data.test_y,
                                                    swap.donor_data.num_classes)
    synthetic = SyntheticSet(
        images=images, soft_targets=targets, labels=labels,
        class_names=data.class_names,
        metadata={"dataset": settings.dataset_label, "extractor": settings.extractor_label,
                  "teacher": settings.teacher.label, "seed": str(settings.seed)},
    )
    parameters = {"teacher": count_parameters(teacher), "student": count_parameters(student)}
    if compressed is not None:
        parameters["compressed"] = compressed.trainable_parameters
    return RunResult(
        data=data, teacher=teacher, student=student, synthetic=synthetic,
        evaluations=evaluations, teacher_losses=teacher_losses, student_losses=student_losses,
        teacher_source=obtained.source, teacher_key=obtained.key,
        extraction_info=extracted.info, parameters=parameters, seconds=seconds,
        swap=swap, compressed=compressed,
    )
