"""The paper's protocol, stage by stage. No tracking and no config framework in here."""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from classvis.config import RunSettings
from classvis.data import ImageData, load_dataset
from classvis.evaluate import Evaluation, evaluate
from classvis.extract import extract, soft_targets
from classvis.fit import distill, fit
from classvis.models import Classifier, build_model, count_parameters
from classvis.synthetic import SyntheticSet
from classvis.teacher_cache import obtain_teacher, teacher_key


def stage_seed(seed: int, stage: str) -> int:
    """An independent, reproducible seed per stage, so one stage's randomness never shifts
    another's (and a teacher depends on nothing but its own settings and seed)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stage}".encode()).digest()[:4], "little")


@dataclass
class RunResult:
    data: ImageData
    teacher: Classifier
    student: Classifier
    synthetic: SyntheticSet
    evaluations: dict[str, Evaluation]     # "teacher", "student", "untrained"
    teacher_losses: list[float]            # per epoch
    teacher_source: str                    # "trained" or "cache"
    teacher_key: str
    student_losses: list[float]            # per step
    extraction_info: dict[str, float]
    parameters: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


@contextmanager
def _timed(seconds: dict[str, float], stage: str):
    start = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - start


def run(settings: RunSettings,
        on_teacher_epoch: Callable[[int, float], None] | None = None) -> RunResult:
    seconds: dict[str, float] = {}
    with _timed(seconds, "load"):
        data = load_dataset(settings.dataset)
    with _timed(seconds, "teacher"):
        key, material = teacher_key(data, settings.teacher, settings.trainer.teacher,
                                    settings.seed)
        obtained = obtain_teacher(
            settings.teacher_cache, data, key, material,
            build=lambda: build_model(settings.teacher, data.image_shape, data.num_classes,
                                      stage_seed(settings.seed, "teacher/init")),
            train=lambda model: fit(model, data.train_x, data.train_y, settings.trainer.teacher,
                                    stage_seed(settings.seed, "teacher/order"), on_teacher_epoch),
        )
        teacher, teacher_losses = obtained.model, obtained.epoch_losses
    with _timed(seconds, "extract"):
        extracted = extract(teacher, data, settings.extractor_name, settings.extractor)
        targets = soft_targets(teacher, extracted.images)
    with _timed(seconds, "student"):
        student = build_model(settings.student, data.image_shape, data.num_classes,
                              stage_seed(settings.seed, "student/init"))
        untrained = copy.deepcopy(student)
        student_losses = distill(student, extracted.images, targets, settings.trainer.student,
                                 stage_seed(settings.seed, "student/order"))
    with _timed(seconds, "evaluate"):
        evaluations = {
            name: evaluate(model, data.test_x, data.test_y, data.num_classes)
            for name, model in (("teacher", teacher), ("student", student),
                                ("untrained", untrained))
        }
    synthetic = SyntheticSet(
        images=extracted.images, soft_targets=targets, labels=extracted.labels,
        class_names=data.class_names,
        metadata={"dataset": settings.dataset.name, "extractor": settings.extractor_name,
                  "teacher": settings.teacher.label, "seed": str(settings.seed)},
    )
    return RunResult(
        data=data, teacher=teacher, student=student, synthetic=synthetic,
        evaluations=evaluations, teacher_losses=teacher_losses, student_losses=student_losses,
        teacher_source=obtained.source, teacher_key=obtained.key,
        extraction_info=extracted.info,
        parameters={"teacher": count_parameters(teacher), "student": count_parameters(student)},
        seconds=seconds,
    )
