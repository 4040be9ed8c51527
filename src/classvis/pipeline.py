"""The paper's protocol, stage by stage. No tracking and no config framework in here."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from classvis import __version__
from classvis import runkeys as keys
from classvis.compress import Compressed, compress
from classvis.data import ImageData, load_dataset
from classvis.datafiles import cached_tensors, derived_cache_path
from classvis.distill import distill
from classvis.evaluate import Evaluation, evaluate
from classvis.extract import Extraction, extract, soft_targets
from classvis.fit import fit
from classvis.models import ArchitectureSettings, build_model, count_parameters
from classvis.privacy import Nearest, PrivacyResult, measure, yardstick
from classvis.privacy import code_version as privacy_code_version
from classvis.progress import QUIET, Progress
from classvis.runsettings import RunSettings
from classvis.settings import ConfigError
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
    donor_teacher: nn.Module
    donor_source: str
    donor_key: str
    donor_images: Extraction
    base_images: Extraction
    swapped: SwappedSet
    base_class: int
    baseline_student: nn.Module


@dataclass
class RunResult:
    class_names: list[str]
    data: ImageData | None                 # the real dataset (on the CPU); None from a file
    teacher: nn.Module | None             # None when the student learnt from a file
    student: nn.Module
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
    privacy: PrivacyResult | None = None   # distances to the nearest training images
    file_info: dict[str, float] | None = None  # student trained from a file: agreement, ...
    test_unavailable: str | None = None    # why there is no real test set to evaluate on
    # accuracy on further views of the test set: "student/balanced_test_accuracy", ...
    view_accuracies: dict[str, float] = field(default_factory=dict)
    # the settings each of "teacher" and "student" was built from
    architectures: dict[str, ArchitectureSettings] = field(default_factory=dict)


@contextmanager
def _timed(seconds: dict[str, float], stage: str):
    start = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - start


def _teacher(settings: RunSettings, data: ImageData,
             on_epoch: Callable[[int, float], None] | None = None,
             progress: Progress = QUIET, what: str = "teacher") -> Teacher:
    """The run's teacher for ``data``: from the cache, or trained (and cached)."""
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


def _extract(settings: RunSettings, teacher: nn.Module, data: ImageData, progress: Progress,
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


def _student(settings: RunSettings, data_shape: tuple[int, ...], num_classes: int, images,
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


def _swap(settings: RunSettings, data: ImageData, teacher: nn.Module,
          base: Extraction, base_targets, progress: Progress = QUIET) -> SwapOutcome:
    donor_data = load_dataset(settings.swap.donor_dataset(settings.dataset),
                              stage_seed(settings.seed, "data/balance")).to(settings.device)
    donor = _teacher(settings, donor_data, progress=progress, what="donor teacher")
    donor_images = _extract(settings, donor.model, donor_data, progress, "extract from donor")
    base_class = data.class_names.index(str(settings.swap.replace))
    donor_class = donor_data.class_names.index(str(settings.swap.replace))
    incoming = donor_images.images[donor_images.labels == donor_class]
    donor_targets = (soft_targets(teacher, incoming) if settings.swap.targets == "teacher"
                     else None)
    swapped = swap_class(base, base_targets, donor_images, base_class, donor_class,
                         donor_targets)
    baseline, _, _ = _student(settings, data.image_shape, data.num_classes, base.images,
                              base_targets, progress, "baseline student", teacher)
    return SwapOutcome(settings.swap, donor_data, donor.model, donor.source, donor.key,
                       donor_images, base, swapped, base_class, baseline)


def _view_accuracies(models: dict[str, torch.nn.Module], data: ImageData) -> dict[str, float]:
    """Each model's accuracy on each further view of the test set (one-vs-rest: the full and the
    balanced test set), as ``<model>/<view>_test_accuracy``."""
    return {keys.measure(name, f"{view}_test_accuracy"):
            evaluate(model, x, y, data.num_classes).accuracy
            for view, (x, y) in data.test_views.items() for name, model in models.items()}


def _provenance(settings: RunSettings, teacher_accuracy: float, teacher_parameters: int,
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
        "teacher_training": json.dumps(asdict(settings.trainer.teacher)),
        "source_dataset": json.dumps(source),
        "classvis_version": __version__,
    }


def real_test_set(settings: RunSettings) -> tuple[ImageData | None, str]:
    """The real dataset a synthetic set file came from, if it can be found on this machine
    (``dataset.test_root``, else the root recorded in the file); else None and the reason."""
    source = settings.source_file
    if source is None or source.source_dataset is None:
        return None, source.why_no_source if source else "the run has no synthetic set file"
    try:
        seed = stage_seed(source.source_seed, "data/balance")
        return load_dataset(source.source_dataset, seed), ""
    except (ConfigError, OSError, RuntimeError, ValueError) as error:
        return None, str(error)


def _run_from_file(settings: RunSettings, progress: Progress) -> RunResult:
    """Train a student from a synthetic set file alone; evaluate it on the real test set of the
    dataset the file came from when that is available here."""
    assert settings.source_file is not None
    seconds: dict[str, float] = {}
    with _timed(seconds, "load"):
        synthetic = settings.source_file.synthetic
        real, why_not = real_test_set(settings)
    names = synthetic.class_names
    if real is not None and (real.class_names != names
                             or real.image_shape != synthetic.image_shape):
        why_not = (f"the source dataset found here has classes {real.class_names} and images "
                   f"{real.image_shape}, the file {names} and {synthetic.image_shape}")
        real = None
    images = synthetic.images.to(settings.device)
    with _timed(seconds, "student"):
        student, untrained, student_losses = _student(
            settings, synthetic.image_shape, len(names), images,
            synthetic.soft_targets.to(settings.device), progress)
    evaluations = {}
    with _timed(seconds, "evaluate"):
        if real is not None:
            test_x, test_y = real.test_x.to(settings.device), real.test_y.to(settings.device)
            evaluations = {name: evaluate(model, test_x, test_y, len(names))
                           for name, model in (("student", student), ("untrained", untrained))}
        with torch.no_grad():
            agreement = (student(images).argmax(1).cpu()
                         == synthetic.soft_targets.argmax(1)).float().mean().item()
    info = {"synthetic_agreement": agreement}
    if "teacher_accuracy" in synthetic.metadata:
        info["source_teacher_accuracy"] = float(synthetic.metadata["teacher_accuracy"])
    return RunResult(
        class_names=list(names), data=None, teacher=None, student=student, synthetic=synthetic,
        evaluations=evaluations,
        teacher_losses=[], teacher_source="file", teacher_key=synthetic.metadata.get(
            "teacher_key", ""),
        student_losses=student_losses, extraction_info={}, parameters={
            "student": count_parameters(student)}, seconds=seconds, file_info=info,
        test_unavailable=why_not if real is None else None,
        architectures={"student": student_architecture(settings)},
    )


def _privacy_yardstick(settings: RunSettings, data: ImageData) -> Nearest:
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
    with _timed(seconds, "load"):
        data_on_cpu = load_data(settings) if data is None else data
        data = data_on_cpu.to(settings.device)   # moved once; every stage computes there
    with _timed(seconds, "teacher"):
        obtained = _teacher(settings, data, on_teacher_epoch, progress)
        teacher, teacher_losses = obtained.model, obtained.epoch_losses
    with _timed(seconds, "extract"):
        extracted = _extract(settings, teacher, data, progress)
        targets = soft_targets(teacher, extracted.images)
    swap = None
    images, labels = extracted.images, extracted.labels
    if settings.swap.enabled:
        with _timed(seconds, "swap"):
            swap = _swap(settings, data, teacher, extracted, targets, progress)
        images, targets = swap.swapped.images, swap.swapped.soft_targets
    with _timed(seconds, "student"):
        student, untrained, student_losses = _student(settings, data.image_shape,
                                                      data.num_classes, images, targets, progress,
                                                      teacher=teacher)
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
        view_accuracies = _view_accuracies(models, data)
        if swap is not None:
            evaluations["donor_teacher"] = evaluate(swap.donor_teacher, swap.donor_data.test_x,
                                                    swap.donor_data.test_y,
                                                    swap.donor_data.num_classes)
            view_accuracies.update(_view_accuracies({"donor_teacher": swap.donor_teacher},
                                                    swap.donor_data))
    privacy = None
    if settings.privacy.enabled:
        with _timed(seconds, "privacy"):
            privacy = measure(images, data.train_x, data.test_x, settings.privacy,
                              _privacy_yardstick(settings, data))
    parameters = {"teacher": count_parameters(teacher), "student": count_parameters(student)}
    if compressed is not None:
        parameters["compressed"] = compressed.trainable_parameters
    synthetic = SyntheticSet(
        images=images.cpu(), soft_targets=targets.cpu(), labels=labels.cpu(),
        class_names=data.class_names,
        metadata=_provenance(settings, evaluations["teacher"].accuracy, parameters["teacher"],
                             obtained.key),
    )
    return RunResult(
        class_names=data.class_names, data=data_on_cpu, teacher=teacher, student=student,
        synthetic=synthetic,
        evaluations=evaluations, teacher_losses=teacher_losses, student_losses=student_losses,
        teacher_source=obtained.source, teacher_key=obtained.key,
        extraction_info=extracted.info, parameters=parameters, seconds=seconds,
        swap=swap, compressed=compressed, privacy=privacy, view_accuracies=view_accuracies,
        architectures={"teacher": settings.teacher, "student": student_architecture(settings)},
    )
