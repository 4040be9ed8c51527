"""The paper's protocol: the stages of ``stages.py`` in order, for a run from a dataset or from
a synthetic set file. No tracking and no config framework in here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from classvis.compress import Compressed, compress
from classvis.data import ImageData, load_dataset
from classvis.evaluate import Agreement, Evaluation, agreement, evaluate
from classvis.extract import soft_targets
from classvis.models import ArchitectureSettings, count_parameters
from classvis.privacy import PrivacyResult, measure
from classvis.progress import QUIET, Progress
from classvis.runsettings import RunSettings
from classvis.stages import (
    SwapOutcome,
    extract_images,
    obtain_run_teacher,
    privacy_yardstick,
    provenance,
    stage_seed,
    student_architecture,
    swap_stage,
    timed,
    train_student,
    view_accuracies,
)
from classvis.synthetic import SyntheticSet
from classvis.validation import ConfigError


@dataclass
class RunResult:
    class_names: list[str]
    data: ImageData | None                 # the real dataset (on the CPU); None from a file
    teacher: nn.Module | None             # None when the student learnt from a file
    student: nn.Module
    synthetic: SyntheticSet
    evaluations: dict[str, Evaluation]     # "teacher", "student", "untrained", ...
    teacher_losses: list[float]            # per epoch
    teacher_origin: str                    # trained, cache, weights or file
    teacher_key: str
    student_losses: list[float]            # per step
    extraction_info: dict[str, float]
    parameters: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    swap: SwapOutcome | None = None
    compressed: Compressed | None = None
    privacy: PrivacyResult | None = None   # distances to the nearest training images
    file_info: dict[str, float] | None = None  # student trained from a file: agreement, ...
    test_unavailable: str | None = None    # why there is no real test set to evaluate on
    privacy_skipped: str | None = None     # why the privacy measure was not taken
    agreement: Agreement | None = None     # student vs teacher without a test set
    # accuracy on further views of the test set: "student/balanced_test_accuracy", ...
    view_accuracies: dict[str, float] = field(default_factory=dict)
    # the settings each of "teacher" and "student" was built from
    architectures: dict[str, ArchitectureSettings] = field(default_factory=dict)


def real_test_set(settings: RunSettings) -> tuple[ImageData | None, str]:
    """The real dataset a synthetic set file came from, if it can be found on this machine
    (``dataset.test_root``, else the root recorded in the file); else None and the reason."""
    source = settings.synthetic_file
    if source is None or source.dataset is None:
        return None, source.why_no_dataset if source else "the run has no synthetic set file"
    try:
        seed = stage_seed(source.seed, "data/balance")
        return load_dataset(source.dataset, seed), ""
    except (ConfigError, OSError, RuntimeError, ValueError) as error:
        return None, str(error)


def _run_from_file(settings: RunSettings, progress: Progress) -> RunResult:
    """Train a student from a synthetic set file alone; evaluate it on the real test set of the
    dataset the file came from when that is available here."""
    assert settings.synthetic_file is not None
    seconds: dict[str, float] = {}
    with timed(seconds, "load"):
        synthetic = settings.synthetic_file.synthetic
        real, why_not = real_test_set(settings)
    names = synthetic.class_names
    if real is not None and (real.class_names != names
                             or real.image_shape != synthetic.image_shape):
        why_not = (f"the source dataset found here has classes {real.class_names} and images "
                   f"{real.image_shape}, the file {names} and {synthetic.image_shape}")
        real = None
    images = synthetic.images.to(settings.device)
    with timed(seconds, "student"):
        student, untrained, student_losses = train_student(
            settings, synthetic.image_shape, len(names), images,
            synthetic.soft_targets.to(settings.device), progress)
    evaluations = {}
    with timed(seconds, "evaluate"):
        if real is not None:
            test_x, test_y = real.test_x.to(settings.device), real.test_y.to(settings.device)
            evaluations = {name: evaluate(model, test_x, test_y, len(names))
                           for name, model in (("student", student), ("untrained", untrained))}
        with torch.no_grad():
            agreement = (student(images).argmax(1).cpu()
                         == synthetic.soft_targets.argmax(1)).float().mean().item()
    info = {"synthetic_agreement": agreement}
    if "teacher_accuracy" in synthetic.metadata:
        info["file_teacher_accuracy"] = float(synthetic.metadata["teacher_accuracy"])
    return RunResult(
        class_names=list(names), data=None, teacher=None, student=student, synthetic=synthetic,
        evaluations=evaluations,
        teacher_losses=[], teacher_origin="file", teacher_key=synthetic.metadata.get(
            "teacher_key", ""),
        student_losses=student_losses, extraction_info={}, parameters={
            "student": count_parameters(student)}, seconds=seconds, file_info=info,
        test_unavailable=why_not if real is None else None,
        architectures={"student": student_architecture(settings)},
    )


def load_data(settings: RunSettings) -> ImageData:
    """The run's real dataset on the CPU, checked against what the run asks of it (so that a
    broken image or too few images of a class fail before a run is opened)."""
    data = load_dataset(settings.dataset, stage_seed(settings.seed, "data/balance"))
    check_data = getattr(settings.extractor, "check_data", None)
    if check_data is not None:
        check_data(data, "extractor")
    return data


def run(settings: RunSettings,
        on_teacher_epoch: Callable[[int, float], None] | None = None,
        progress: Progress = QUIET, data: ImageData | None = None) -> RunResult:
    """Every stage of one run; ``data``: the dataset ``load_data`` gave, if already loaded."""
    if settings.from_file:
        return _run_from_file(settings, progress)
    seconds: dict[str, float] = {}
    with timed(seconds, "load"):
        data_on_cpu = load_data(settings) if data is None else data
        data = data_on_cpu.to(settings.device)   # moved once; every stage computes there
    with timed(seconds, "teacher"):
        obtained = obtain_run_teacher(settings, data, on_teacher_epoch, progress)
        teacher, teacher_losses = obtained.model, obtained.epoch_losses
    with timed(seconds, "extract"):
        extracted = extract_images(settings, teacher, data, progress)
        targets = soft_targets(teacher, extracted.images)
    swap = None
    images, labels = extracted.images, extracted.labels
    if settings.swap.enabled:
        with timed(seconds, "swap"):
            swap = swap_stage(settings, data, teacher, extracted, targets, progress)
        images, targets = swap.swapped.images, swap.swapped.soft_targets
    with timed(seconds, "student"):
        student, untrained, student_losses = train_student(settings, data.image_shape,
                                                      data.num_classes, images, targets, progress,
                                                      teacher=teacher)
    compressed = None
    if settings.compress.enabled:
        with timed(seconds, "compress"):
            compressed = compress(images, labels, data.num_classes, data.train_x, data.train_y,
                                  settings.compress, stage_seed(settings.seed, "compress/order"))
    with timed(seconds, "evaluate"):
        models = {"teacher": teacher, "student": student, "untrained": untrained}
        if swap is not None:
            models["baseline_student"] = swap.baseline_student
        if compressed is not None:
            models["compressed"] = compressed.model
        evaluations, views = {}, {}
        if data.has_test:
            evaluations = {name: evaluate(model, data.test_x, data.test_y, data.num_classes)
                           for name, model in models.items()}
            views = view_accuracies(models, data)
        if swap is not None:
            evaluations["donor_teacher"] = evaluate(swap.donor_teacher, swap.donor_data.test_x,
                                                    swap.donor_data.test_y,
                                                    swap.donor_data.num_classes)
            views.update(view_accuracies({"donor_teacher": swap.donor_teacher},
                                         swap.donor_data))
        agreed = agreement(student, teacher, images, labels, data.num_classes,
                           stage_seed(settings.seed, "agreement/views"))
    privacy, privacy_skipped = None, None
    if settings.privacy.enabled and not data.has_train:
        privacy_skipped = ("no training images to measure against (dataset=none)"
                           if settings.dataset.loader == "none" else
                           "no training split to measure against")
    elif settings.privacy.enabled:
        with timed(seconds, "privacy"):
            privacy = measure(images, data.train_x, data.test_x, settings.privacy,
                              privacy_yardstick(settings, data))
    parameters = {"teacher": count_parameters(teacher), "student": count_parameters(student)}
    if compressed is not None:
        parameters["compressed"] = compressed.trainable_parameters
    synthetic = SyntheticSet(
        images=images.cpu(), soft_targets=targets.cpu(), labels=labels.cpu(),
        class_names=data.class_names,
        metadata=provenance(settings, evaluations["teacher"].accuracy if data.has_test
                            else float("nan"), parameters["teacher"], obtained.key),
    )
    return RunResult(
        class_names=data.class_names, data=data_on_cpu, teacher=teacher, student=student,
        synthetic=synthetic,
        evaluations=evaluations, teacher_losses=teacher_losses, student_losses=student_losses,
        teacher_origin=obtained.origin, teacher_key=obtained.key,
        extraction_info=extracted.info, parameters=parameters, seconds=seconds,
        swap=swap, compressed=compressed, privacy=privacy, view_accuracies=views,
        test_unavailable=None if data.has_test else "dataset=none: no real images",
        privacy_skipped=privacy_skipped, agreement=agreed,
        architectures={"teacher": settings.teacher, "student": student_architecture(settings)},
    )
