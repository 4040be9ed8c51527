"""The whole run's settings, parsed and cross-checked from the composed Hydra config at the door
(the one module that reads the config framework's objects)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from classvis.compress import CompressSettings
from classvis.data import DatasetSettings, check_class_names
from classvis.device import resolve_device
from classvis.extract import EXTRACTORS, ClassVisSettings
from classvis.from_given import check_given, known_input, read_given, resolve_splits
from classvis.given_teacher import TeacherFromSettings
from classvis.loaders import check_files, known_class_names
from classvis.models import has_batchnorm, has_hidden_layers, is_dense, parse_architecture
from classvis.privacy import DISTANCE_BUDGET, PrivacySettings
from classvis.progress import check_mode
from classvis.runsettings import RunSettings, SyntheticFile, TrainerSettings
from classvis.swap import SwapSettings
from classvis.synthetic import SyntheticSet
from classvis.teacher_cache import TeacherCacheSettings
from classvis.track.settings import TrackingSettings, absolute_uri
from classvis.validation import ConfigError, parse, require


def resolved_mapping(node: Any, key: str, throw_on_missing: bool = False) -> dict[str, Any]:
    """A config node resolved into plain Python containers; ``ConfigError`` unless a mapping."""
    container = OmegaConf.to_container(node, resolve=True, throw_on_missing=throw_on_missing)
    if not isinstance(container, dict):
        raise ConfigError(key, "a mapping", container)
    return {str(name): value for name, value in container.items()}


# what does not change a run's result: where things are stored and whether to rerun
TOP_LEVEL_KEYS = frozenset({"dataset", "teacher", "student", "extractor", "trainer", "seed",
                            "tracking", "teacher_cache", "swap", "compress", "privacy", "progress",
                            "force", "device", "data_root", "teacher_from"})
_NOT_RESULTS = ("tracking", "teacher_cache", "force", "data_root", "progress")
# (``device`` is part of a result: the app records the device it resolved to, not "auto")
_DATASET_LOCATION = ("root", "cache", "cache_dir", "path")  # test_root: whether a test set is found


def config_digest(resolved: dict) -> str:
    """A digest of everything in a resolved config that determines the run's results, so that a
    re-run sweep recognises the jobs that already FINISHED."""
    relevant = {key: value for key, value in resolved.items() if key not in _NOT_RESULTS}
    if isinstance(relevant.get("dataset"), dict):
        relevant["dataset"] = {key: value for key, value in relevant["dataset"].items()
                               if key not in _DATASET_LOCATION and key != "allow_undigested"
                               # the keys of a run with every split keep their digests
                               and not (key == "splits" and value in ("auto", "train_and_test"))
                               and not (key == "image_shape" and value is None)}
    given = relevant.pop("teacher_from", None)  # a trained teacher adds nothing to the digest
    if isinstance(given, dict) and given.get("kind", "train") != "train":
        relevant["teacher_from"] = {key: value for key, value in given.items() if key != "path"}
    text = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _absolute(path: str | None, base: Path) -> str | None:
    return None if path is None else str((base / Path(path).expanduser()).resolve())


def _read_synthetic_file(settings: RunSettings) -> SyntheticFile:
    """Read a synthetic set file once, and parse the real dataset its header names (where its
    test set would be found on this machine: ``dataset.test_root``, else the recorded root)."""
    path = settings.dataset.path
    if path is None:
        raise ConfigError("dataset.path", "a classvis synthetic set file", None)
    try:
        synthetic = SyntheticSet.load(path, settings.dataset.allow_undigested)
    except ValueError as error:
        raise ConfigError("dataset.path", "a classvis synthetic set file", str(error)) from None
    header = synthetic.metadata
    seed = int(header.get("seed", settings.seed))
    if "source_dataset" not in header:
        return SyntheticFile(path, synthetic, None, seed,
                          "the file does not record its source dataset")
    source = json.loads(header["source_dataset"])
    if settings.dataset.test_root is not None:
        source["root"] = settings.dataset.test_root
    source.update(download=False, cache=settings.dataset.cache,
                  cache_dir=settings.dataset.cache_dir)
    try:
        return SyntheticFile(path, synthetic, parse(DatasetSettings, source, "dataset.source"),
                             seed)
    except ConfigError as error:
        return SyntheticFile(path, synthetic, None, seed, str(error))


# working copies of a synthetic set at the peak of a run (extraction: the images, their
# gradient, momentum and working views), measured at 7.3-7.4 (docs/notes.md, "Memory of a large
# synthetic set"); the privacy measure adds its fixed budget of distances
SYNTHETIC_COPIES = 8


def _check_memory(settings: RunSettings, shape: tuple[int, ...], classes: int) -> None:
    """A synthetic set too large for the run's device is refused before the work, not found out
    after minutes of it by an allocation of hundreds of gigabytes."""
    values = settings.per_class * classes * math.prod(shape)
    # the set and its starts whole, the working copies of one group (extraction.batch_size)
    extractor = settings.extractor
    group = (extractor.group_size(classes) * extractor.classes_per_group(classes)
             * math.prod(shape))
    needed = (values * 4 * 2 + group * 4 * (SYNTHETIC_COPIES - 2)
              + (DISTANCE_BUDGET * 4 if settings.privacy.enabled else 0))
    if settings.device.startswith("cuda"):
        available = torch.cuda.mem_get_info(torch.device(settings.device))[0]
        where = settings.device
    else:
        import psutil

        available, where = psutil.virtual_memory().available, "this machine"
    require(needed <= available, "extractor.per_class",
            f"a synthetic set that fits in memory ({settings.per_class} x {classes} images of "
            f"{'x'.join(map(str, shape))} need about {needed / 2**30:.1f} GiB; {where} has "
            f"{available / 2**30:.1f} GiB free)", settings.per_class)


def _check_architectures(settings: RunSettings) -> None:
    """The models against the dataset's image size, and the stages that need the paper's dense
    models against the models chosen."""
    check_files(settings.dataset)
    names = known_class_names(settings.dataset)
    if names is not None and settings.dataset.class_names is None:  # else checked by its parse
        if settings.dataset.classes is not None:
            check_class_names(settings.dataset.classes, names, "dataset.classes")
        if settings.dataset.one_vs_rest is not None:
            check_class_names([settings.dataset.one_vs_rest], names, "dataset.one_vs_rest")
    shape, classes = known_input(settings)
    if shape is not None:
        settings.teacher.check_input(shape, "teacher")
        settings.student.check_input(shape, "student")
        if classes is not None and isinstance(settings.extractor, ClassVisSettings):
            _check_memory(settings, shape, classes)
    if settings.compress.enabled:
        require(is_dense(settings.teacher), "compress",
                "none with a convolutional teacher (compress=biases makes the images the weight "
                "rows of a model without hidden layers, the paper's shallow setting)",
                settings.teacher.label)
    if isinstance(settings.extractor, ClassVisSettings) and settings.extractor.bn:
        require(has_batchnorm(settings.teacher), "extractor.bn",
                "0 for a teacher without BatchNorm layers (resnet18 or convnet with norm=batch "
                "have them)", settings.extractor.bn)
    if settings.trainer.student.hidden_init == "span":
        require(is_dense(settings.student), "trainer.student.hidden_init",
                "model with a convolutional student (span initialises a dense first layer)",
                "span")


def run_settings(cfg: DictConfig, base_dir: Path | None = None) -> RunSettings:
    """Validate everything a run needs; raise ``ConfigError`` naming the first bad key.

    Relative paths (data root, cache, SQLite store) are taken against ``base_dir``, the directory
    the user launched from, so that every job of a sweep sees the same files."""
    base = Path(base_dir or Path.cwd())
    student = cfg.get("student")  # before its ??? asks for a network it cannot have
    brought = student.get("name") if isinstance(student, DictConfig) else None
    require(brought not in ("module", "torchvision"), "architecture@student",
            f"a built-in architecture ({brought} is a trained network you bring as the "
            f"teacher, teacher_from={brought}; a student is trained here)", brought)
    try:
        plain = resolved_mapping(cfg, "config", throw_on_missing=True)
    except ConfigError:
        raise
    except Exception as error:  # missing value (???) or a failed interpolation
        key = getattr(error, "full_key", None) or "config"
        raise ConfigError(str(key), "a value", str(error).splitlines()[0]) from None
    plain.pop("hydra", None)
    dataset, tracking = plain.get("dataset"), plain.get("tracking")
    if isinstance(dataset, dict):
        for key in ("root", "cache_dir", "path", "test_root"):
            if isinstance(dataset.get(key), str):
                dataset[key] = _absolute(dataset[key], base)
    given = plain.get("teacher_from")
    if isinstance(given, dict) and isinstance(given.get("path"), str):
        given["path"] = _absolute(given["path"], base)
    cache = plain.get("teacher_cache")
    if isinstance(cache, dict) and isinstance(cache.get("dir"), str):
        cache["dir"] = _absolute(cache["dir"], base)
    if isinstance(tracking, dict):
        if isinstance(tracking.get("uri"), str):
            tracking["uri"] = absolute_uri(tracking["uri"], base)
        if isinstance(tracking.get("artifact_dir"), str):
            tracking["artifact_dir"] = _absolute(tracking["artifact_dir"], base)
    for key in ("dataset", "teacher", "student", "extractor", "trainer", "seed", "tracking"):
        require(key in plain, key, "a config entry", None)
    for key in plain:  # a typo such as +sed=1 would otherwise change nothing, silently
        require(key in TOP_LEVEL_KEYS, key, "no such key; known top-level keys are "
                + ", ".join(sorted(TOP_LEVEL_KEYS)))
    extractor_name, extractor = EXTRACTORS.parse(plain["extractor"], "extractor")
    require(isinstance(plain["seed"], int) and not isinstance(plain["seed"], bool), "seed",
            "an integer", plain["seed"])
    settings = RunSettings(
        dataset=parse(DatasetSettings, plain["dataset"], "dataset"),
        teacher=parse_architecture(plain["teacher"], "teacher"),
        student=parse_architecture(plain["student"], "student"),
        extractor_name=extractor_name,
        extractor=extractor,
        trainer=parse(TrainerSettings, plain["trainer"], "trainer"),
        seed=plain["seed"],
        tracking=parse(TrackingSettings, plain["tracking"], "tracking"),
        teacher_cache=parse(TeacherCacheSettings, plain.get("teacher_cache", {}), "teacher_cache"),
        swap=parse(SwapSettings, plain.get("swap") or {}, "swap"),
        compress=parse(CompressSettings, plain.get("compress") or {}, "compress"),
        privacy=parse(PrivacySettings, plain.get("privacy") or {}, "privacy"),
        teacher_from=parse(TeacherFromSettings, plain.get("teacher_from") or {}, "teacher_from"),
        force=plain.get("force", False),
        progress=check_mode(plain.get("progress", "auto")),
        device=resolve_device(plain.get("device", "auto")),
    )
    require(isinstance(settings.force, bool), "force", "true or false", settings.force)
    from_file = settings.dataset.loader == "synthetic"
    if settings.trainer.student.augment_targets == "auto":
        student = replace(settings.trainer.student,
                          augment_targets="keep" if from_file else "teacher")
        settings = replace(settings, trainer=replace(settings.trainer, student=student))
    if from_file:
        require(not settings.teacher_from.given, "teacher_from", "train with dataset=synthetic "
                "(a student from a file has no teacher)", settings.teacher_from.kind)
        settings = replace(settings, synthetic_file=_read_synthetic_file(settings))
        student = settings.trainer.student
        require(student.start == "own_init", "trainer.student.start",
                "own_init with dataset=synthetic (a file carries no teacher to start from)",
                student.start)
        require(not student.augment or student.augment_targets == "keep",
                "trainer.student.augment_targets", "keep with dataset=synthetic (a file carries "
                "no teacher to score the augmented images)", student.augment_targets)
        for stage in ("swap", "compress"):
            require(not getattr(settings, stage).enabled, stage,
                    f"none with dataset=synthetic (the {stage} stage needs the teacher's data)",
                    stage)
        return settings
    module_teacher = settings.teacher.name == "module"
    for kind in ("module", "torchvision"):  # an architecture that only a given teacher has
        own = settings.teacher.name == kind
        chosen = settings.teacher_from.kind == kind
        if own and kind == "module":  # your class with a pickled model's weights (opted in)
            chosen = chosen or (settings.teacher_from.kind == "mlflow"
                                and settings.teacher_from.unpickle)
        require(own == chosen, "teacher_from",
                f"{kind} with architecture@teacher={kind} (teacher_from={kind} chooses both)"
                if own else f"train, weights or mlflow with architecture@teacher="
                f"{settings.teacher.label} (teacher_from={kind} chooses architecture {kind})",
                settings.teacher_from.kind)
    settings = resolve_splits(settings)
    if settings.teacher_from.given:  # dataset=none: its shape and classes from the teacher
        settings = read_given(settings)
    if settings.trainer.student.start == "teacher_init":
        require(settings.student == settings.teacher, "trainer.student.start",
                "own_init unless the student's architecture is the teacher's (teacher_init starts "
                f"the student from the teacher's initial weights; student {settings.student.label}"
                f", teacher {settings.teacher.label})", "teacher_init")
    if (EXTRACTORS[extractor_name].trait("teacher_without_hidden_layers")
            and has_hidden_layers(settings.teacher)):
        raise ConfigError("extractor.name", f"{extractor_name} needs a teacher without hidden "
                          f"layers (architecture@teacher=linear)", settings.teacher.label)
    _check_architectures(settings)
    require(not (module_teacher and settings.tracking.log_models == "all"),
            "tracking.log_models", "student or none with teacher_from=module (your network's "
            "class is your code, which a logged MLflow model could not rebuild from its own)",
            settings.tracking.log_models)
    require(not (settings.teacher_from.given and settings.dataset.classes is not None
                 and settings.tracking.log_models == "all"), "tracking.log_models",
            "student or none with dataset.classes and a given teacher (the teacher scores "
            "the run's classes among all of its own: a logged model of it would not be a "
            "network of those classes)", settings.tracking.log_models)
    if settings.teacher_from.given:
        check_given(settings)
    if settings.swap.enabled:
        donor = settings.swap.donor_dataset(settings.dataset)  # the base keeps every class
        names = known_class_names(settings.dataset)
        if names is not None:  # the swapped class and the donor's, among the dataset's
            check_class_names([settings.swap.replace], names, "swap.replace")
            if donor.classes is not None:
                check_class_names(list(donor.classes), names, "swap.donor_classes")
            if donor.one_vs_rest is not None:
                check_class_names([donor.one_vs_rest], names, "swap.donor_one_vs_rest")
    return settings


__all__ = ["config_digest", "resolved_mapping", "run_settings"]
