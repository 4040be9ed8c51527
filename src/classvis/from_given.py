"""The door of a run whose teacher is given (``teacher_from`` weights, module, mlflow or
torchvision): its weights read once and checked against the network built for the dataset, and
the data such a run may go without: the real training split (``dataset.splits``: a test split
alone) or any data (``dataset=none``: the image shape and classes the teacher declares). Part of
parsing the settings (``from_config``), split off because a given teacher is its own set of
checks."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from classvis.data import check_class_names
from classvis.extract import EXTRACTORS
from classvis.given_teacher import (
    GivenWeights,
    load_given,
    mismatch,
    output_mismatch,
    read_weights,
)
from classvis.integrity import tensors_digest
from classvis.loaders import check_files, known_class_names, known_image_shape, train_present
from classvis.loaders.torchvision_files import refuse_cifar_test_split
from classvis.models import TorchvisionSettings, build_model, parse_architecture
from classvis.runsettings import RunSettings
from classvis.validation import ConfigError, require

# the stages that read real training images, with what each needs them for
NEEDS_TRAINING_DATA = "needs_training_data"


def known_input(settings: RunSettings) -> tuple[tuple[int, int, int] | None, int | None]:
    """The run's image shape and class count (after class subsets), without loading the data;
    None where they cannot be told."""
    names = known_class_names(settings.dataset)
    classes = (2 if settings.dataset.one_vs_rest is not None
               else len(settings.dataset.classes) if settings.dataset.classes is not None
               else None if names is None else len(names))
    return known_image_shape(settings.dataset), classes


def resolve_splits(settings: RunSettings) -> RunSettings:
    """``dataset.splits`` made definite: both splits for a teacher trained here (refused
    without its training files), the test split alone for a given teacher when the training
    files are not there (``auto``); and the stages that need real training images refused
    when the run has none."""
    dataset, kind = settings.dataset, settings.teacher_from.kind
    check_files(dataset)  # found, or fetched (dataset.download), before they are looked at
    if dataset.loader == "none":
        require(settings.teacher_from.given, "teacher_from", "weights, module, mlflow or "
                "torchvision with dataset=none (a teacher trained here needs its training set)",
                kind)
    elif not settings.teacher_from.given:
        require(dataset.splits != "test", "dataset.splits", "train_and_test or auto with "
                "teacher_from=train (the teacher is trained on the training split; a given "
                "teacher, teacher_from=weights, module, mlflow or torchvision, needs the test "
                "split alone)",
                dataset.splits)
        if dataset.splits == "auto":
            require(train_present(dataset), "dataset.root", f"{dataset.name}'s training split "
                    "(the teacher is trained on it; a given teacher, teacher_from=weights, "
                    "module, mlflow or torchvision, needs the test split alone)", dataset.root)
            settings = replace(settings, dataset=replace(dataset, splits="train_and_test"))
    elif dataset.splits == "auto":
        settings = replace(settings, dataset=replace(
            dataset, splits="train_and_test" if train_present(dataset) else "test"))
    if dataset.loader == "torchvision":
        refuse_cifar_test_split(settings.dataset, settings.dataset.splits)
    if "train" not in settings.real_splits:
        without = ("with dataset=none" if dataset.loader == "none"
                   else "without a training split (dataset.splits=test)")
        require(not EXTRACTORS[settings.extractor_name].trait(NEEDS_TRAINING_DATA), "extractor",
                f"an extractor that needs no real images {without} ({settings.extractor_name} "
                "reads real training images)", settings.extractor_name)
        require(not settings.compress.enabled, "compress", f"none {without} (compress=biases "
                "fits the images' biases on the real training set)", "biases")
    return settings


def _output_count(settings: RunSettings, weights: GivenWeights, shape: tuple[int, int, int]
                  ) -> int:
    """How many classes the given network scores: your own network's output for a zero batch
    (``module``), or the class count a built-in network fits its weights with."""
    if settings.teacher.name == "module":
        model = load_given(build_model(settings.teacher, shape, 1, 0), weights)
        with torch.no_grad():
            scores = model(torch.zeros(2, *shape))
        require(isinstance(scores, torch.Tensor) and scores.ndim == 2, "teacher.network."
                "_target_", "a network that scores a batch as (N, classes)",
                getattr(scores, "shape", type(scores).__name__))
        return int(scores.shape[1])
    # a built-in network: the class count (the size of one of its biases) whose network the
    # weights fit, key for key
    for count in sorted({int(t.shape[0]) for t in weights.state.values() if t.ndim == 1}):
        if mismatch(build_model(settings.teacher, shape, count, 0), weights.state) is None:
            return count
    raise ConfigError("teacher_from.path", f"weights that fit architecture@teacher="
                      f"{settings.teacher.label} for images of {'x'.join(map(str, shape))} "
                      "with some class count", weights.path)


def _declared_dataset(settings: RunSettings, weights: GivenWeights,
                      logged: dict | None) -> RunSettings:
    """``dataset=none``: the image shape and classes filled in from what the teacher declares
    (your network's input keys, a logged model's description, the weights' output layer),
    unless given as ``dataset.image_shape`` and ``dataset.class_names``."""
    dataset = settings.dataset
    shape = dataset.image_shape
    if shape is None:
        declared = (getattr(settings.teacher, "input_shape", None) if logged is None
                    else tuple(logged["input_shape"]))
        require(declared is not None, "dataset.image_shape", f"[channels, height, width] of "
                f"the images with dataset=none (architecture@teacher={settings.teacher.label} "
                "does not declare the input it takes)", None)
        channels, height, width = (int(size) for size in declared or ())
        shape = (channels, height, width)
    names = dataset.class_names or getattr(settings.teacher, "class_names", None)
    if names is None:
        count = (int(logged["num_classes"]) if logged is not None
                 else _output_count(settings, weights, shape))
        names = tuple(str(index) for index in range(count))
    return replace(settings, dataset=replace(dataset, image_shape=shape, class_names=names))


def read_given(settings: RunSettings) -> RunSettings:
    """The given teacher's weights read once (and, with ``dataset=none``, the data's shape and
    classes from its declaration), with the stages that need a teacher trained here refused."""
    kind = settings.teacher_from.kind
    require(not settings.swap.enabled, "swap", f"none with teacher_from={kind} (the swap stage "
            "trains a donor teacher on other classes)", settings.swap.label)
    require(settings.trainer.student.start == "own_init", "trainer.student.start",
            f"own_init with teacher_from={kind} (a given teacher has no initial weights to "
            "start the student from)", settings.trainer.student.start)
    require(settings.dataset.one_vs_rest is None, "dataset.one_vs_rest", f"null with "
            f"teacher_from={kind} (a given teacher scores its own classes; dataset.classes "
            "keeps some of them)", settings.dataset.one_vs_rest)
    model_id, logged = None, None
    if kind == "mlflow":
        weights, model_id, logged = _logged_teacher(settings)
    elif kind == "torchvision":
        weights = _torchvision_weights(settings)
    else:
        assert settings.teacher_from.path is not None  # TeacherFromSettings.check
        weights = read_weights(settings.teacher_from.path, "teacher_from.path")
    settings = replace(settings, given_weights=weights, teacher_model_id=model_id)
    if settings.dataset.loader == "none":
        settings = _declared_dataset(settings, weights, logged)
    if settings.dataset.classes is not None:  # the teacher scores them among all its classes
        names = known_class_names(settings.dataset)
        if names is not None:
            check_class_names(settings.dataset.classes, names, "dataset.classes")
            settings = replace(settings, teacher_outputs=tuple(
                names.index(str(name)) for name in settings.dataset.classes))
    if logged is not None:
        _check_logged_input(settings, logged)
    return settings


def teacher_classes(settings: RunSettings) -> int | None:
    """How many classes the given teacher scores (all the dataset's, before a subset)."""
    if settings.teacher_outputs is None:
        return known_input(settings)[1]
    names = known_class_names(settings.dataset)
    return None if names is None else len(names)


def _torchvision_weights(settings: RunSettings) -> GivenWeights:
    """``teacher_from=torchvision``: the pretrained file from the torch hub cache (fetched
    there when missing, unless ``download=false``), or seeded random weights
    (``pretrained=false``)."""
    teacher = settings.teacher
    assert isinstance(teacher, TorchvisionSettings)
    if not settings.teacher_from.pretrained:
        model = build_model(teacher, teacher.input_shape, len(teacher.class_names), settings.seed)
        state = {key: value.detach().clone() for key, value in
                 model.network.state_dict().items()}  # type: ignore[union-attr]
        return GivenWeights(f"random init of {teacher.builder} (seed {settings.seed})", state,
                            tensors_digest(state)[:20])
    path = teacher.hub_file
    if not path.is_file() and settings.teacher_from.download:
        _download(teacher.url, path)
    require(path.is_file(), "teacher.weights", f"{teacher.weights}'s file in the torch hub "
            f"cache: put {teacher.url} at {path} (or set TORCH_HOME to a folder whose "
            "hub/checkpoints/ holds it; teacher_from.pretrained=false tries the route with "
            "random weights)", f"no {path.name} there")
    return read_weights(str(path), "teacher.weights")


def _download(url: str, path: Path, timeout_s: float = 30) -> None:
    """``url`` into ``path`` at once (a partial file never stays); nothing on failure: the
    caller says the file is missing."""
    import os
    import urllib.request

    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout_s) as answer, partial.open("wb") as out:
            while chunk := answer.read(1 << 20):
                out.write(chunk)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)


def check_given(settings: RunSettings) -> None:
    """The given weights against the teacher's architecture built for the dataset: every key
    and shape, then one forward pass of a zero batch."""
    shape, classes = known_input(settings)[0], teacher_classes(settings)
    weights, kind = settings.given_weights, settings.teacher_from.kind
    assert weights is not None
    if shape is None or classes is None:
        return
    model = build_model(settings.teacher, shape, classes, 0)
    what = (f"architecture@teacher={settings.teacher.label} for {settings.dataset.name} "
            f"({'x'.join(map(str, shape))}, {classes} classes)")
    why = mismatch(model, weights.state)
    require(why is None, {"mlflow": "teacher_from.uri", "torchvision": "teacher.weights"}.get(
        kind, "teacher_from.path"), f"weights that fit {what}", f"{weights.path}: {why}")
    why = output_mismatch(load_given(model, weights), shape, classes)
    require(why is None, "teacher.network._target_" if kind == "module" else "teacher",
            f"a network that scores the declared input as {what}", why)


def _logged_teacher(settings: RunSettings) -> tuple[GivenWeights, str | None, dict | None]:
    """``teacher_from=mlflow``: the logged model read (nothing unpickled, unless the run opted
    in for a pickled one) and its architecture checked against the run's teacher
    architecture."""
    from classvis.track.given import read_logged_teacher

    assert settings.teacher_from.uri is not None  # TeacherFromSettings.check
    with tempfile.TemporaryDirectory(prefix="classvis-teacher-") as folder:
        logged = read_logged_teacher(settings.teacher_from.uri, settings.tracking.uri,
                                     Path(folder), settings.teacher_from.unpickle)
    described = logged.description
    if described is None:  # a pickled model's weights, for the architecture the run declares
        return logged.weights, logged.model_id, None
    architecture = parse_architecture(described["architecture"], "teacher_from.uri")
    require(architecture == settings.teacher, "architecture@teacher",
            f"the logged teacher's architecture, {architecture.label} (architecture@teacher="
            f"{architecture.name} with its keys as logged; it also chooses the extractor)",
            settings.teacher.label)
    return logged.weights, logged.model_id, described


def _check_logged_input(settings: RunSettings, described: dict) -> None:
    """A logged teacher's input and classes against the dataset's."""
    uri = settings.teacher_from.uri
    shape, classes = known_input(settings)[0], teacher_classes(settings)
    logged_shape = tuple(described["input_shape"])
    require(shape is None or logged_shape == tuple(shape), "teacher_from.uri",
            f"a teacher of {settings.dataset.name}'s images "
            f"({'x'.join(map(str, shape or ()))})",
            f"{uri} takes {'x'.join(map(str, logged_shape))}")
    require(classes is None or described["num_classes"] == classes, "teacher_from.uri",
            f"a teacher of {settings.dataset.name}'s {classes} classes",
            f"{uri} scores {described['num_classes']}")


__all__ = ["check_given", "known_input", "read_given", "resolve_splits", "teacher_classes"]
