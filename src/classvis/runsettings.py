"""The settings of one run, typed and validated (made by ``classvis.from_config.run_settings`` from
the composed Hydra config); what the pipeline reads. No config framework in here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from classvis.compress import CompressSettings
from classvis.data import DatasetSettings
from classvis.distill import StudentTraining
from classvis.extract import ClassVisSettings
from classvis.fit import TeacherTraining
from classvis.given_teacher import GivenWeights, TeacherFromSettings
from classvis.models import ArchitectureSettings, is_dense
from classvis.privacy import PrivacySettings
from classvis.progress import Mode
from classvis.swap import SwapSettings
from classvis.synthetic import SyntheticSet
from classvis.teacher_cache import TeacherCacheSettings
from classvis.track.settings import TrackingSettings


@dataclass(frozen=True)
class TrainerSettings:
    """Config group ``trainer``: the teacher's recipe and the student's."""

    teacher: TeacherTraining
    student: StudentTraining


@dataclass(frozen=True, eq=False)
class SyntheticFile:
    """A synthetic set file (``dataset=synthetic``), read once when the settings are parsed: the
    images, soft targets and header, and the real dataset it came from, parsed from the header
    (None, with the reason, when the header does not describe a usable one)."""
    path: str
    synthetic: SyntheticSet
    dataset: DatasetSettings | None
    seed: int
    why_no_dataset: str = ""

    @property
    def header(self) -> dict[str, str]:
        return self.synthetic.metadata


# the datasets whose measured matrix (docs/results.md) gives the colour caveat
CIFAR10_NAMES = ("cifar10", "cifar10_jpg")

BALANCE_LABELS = {"none": "", "train": ", balanced train set", "train_and_test": ", balanced"}


@dataclass(frozen=True)
class RunSettings:
    dataset: DatasetSettings
    teacher: ArchitectureSettings
    student: ArchitectureSettings
    extractor_name: str
    extractor: Any  # an instance of EXTRACTORS[extractor_name].settings_class
    trainer: TrainerSettings
    seed: int
    tracking: TrackingSettings
    teacher_cache: TeacherCacheSettings
    swap: SwapSettings = SwapSettings()
    compress: CompressSettings = CompressSettings()
    privacy: PrivacySettings = PrivacySettings()
    force: bool = False
    progress: Mode = "auto"
    device: str = "cpu"   # resolved: cpu, cuda:N or mps
    teacher_from: TeacherFromSettings = TeacherFromSettings()
    # dataset=synthetic: the file, read once at validation
    synthetic_file: SyntheticFile | None = field(default=None, compare=False)
    # teacher_from=weights: the weights file, read and checked once at validation
    given_weights: GivenWeights | None = field(default=None, compare=False)
    # teacher_from=mlflow: the MLflow logged model the teacher is (linked as the run's input)
    teacher_model_id: str | None = field(default=None, compare=False)
    # a given teacher with dataset.classes: which of its outputs the run keeps, in order
    teacher_outputs: tuple[int, ...] | None = None

    @property
    def file_header(self) -> dict[str, str] | None:
        """A synthetic set file's header (what it was extracted from); None for other runs."""
        return None if self.synthetic_file is None else self.synthetic_file.header

    @property
    def per_class(self) -> int:
        """Images per class the extractor makes (1 for extractors without the option)."""
        return getattr(self.extractor, "per_class", 1)

    @property
    def real_splits(self) -> tuple[str, ...]:
        """The real splits the run has (resolved at the door): train and test, the test split
        alone, or none (``dataset=none``, or a synthetic set file)."""
        if self.dataset.loader in ("none", "synthetic"):
            return ()
        return ("test",) if self.dataset.splits == "test" else ("train", "test")

    @property
    def from_file(self) -> bool:
        """The student learns from a synthetic set file: no teacher, no extraction."""
        return self.file_header is not None

    @property
    def dataset_name(self) -> str:
        """The dataset's name (the source dataset's, for a synthetic set file)."""
        if self.file_header is not None:
            return json.loads(self.file_header.get("source_dataset", "{}")).get("name", "unknown")
        return self.dataset.name

    @property
    def teacher_label(self) -> str:
        if self.file_header is not None:
            return self.file_header.get("teacher", "unknown teacher")
        return self.teacher.label

    @property
    def dataset_label(self) -> str:
        """``mnist``, ``mnist[3,4]``, ``mnist[3 vs rest]``."""
        if self.file_header is not None:
            return self.file_header.get("dataset", "unknown dataset")
        if self.dataset.classes is not None:
            return f"{self.dataset.name}[{','.join(map(str, self.dataset.classes))}]"
        if self.dataset.one_vs_rest is not None:
            balance = BALANCE_LABELS[self.dataset.one_vs_rest_balance]
            return f"{self.dataset.name}[{self.dataset.one_vs_rest} vs rest{balance}]"
        return self.dataset.name

    @property
    def one_vs_rest_balance(self) -> str | None:
        """How the run's one-vs-rest sets (its own or its swap donor's) are balanced; None when
        it has none."""
        if self.file_header is None and (self.dataset.one_vs_rest is not None
                                    or self.swap.donor_one_vs_rest is not None):
            return self.dataset.one_vs_rest_balance
        return None

    @property
    def extractor_label(self) -> str:
        """``class_vis``, ``class_vis x10`` (10 per class), ``class_vis (3 from 3-vs-4)``."""
        if self.file_header is not None:
            return f"{self.file_header.get('extractor', 'unknown extractor')} [file]"
        label = self.extractor_name
        if self.per_class > 1:
            label += f" x{self.per_class}"
        if self.swap.enabled:
            label += f" ({self.swap.label})"
        return label

    @property
    def extractor_variant(self) -> str:
        """The extractor's settings that differ from its defaults (``l2=0.135``), per_class
        aside; empty for the defaults. Tells synthetic sets of one extractor apart."""
        if self.file_header is not None:
            return ""
        return _differences(self.extractor, skip=("per_class",))

    @property
    def student_variant(self) -> str:
        """The student recipe's settings (``trainer.student``) that differ from the paper's
        (``optimizer=adam, lr=0.001``); empty for the paper's recipe. Tells apart runs that
        trained the same architecture another way."""
        return _differences(self.trainer.student)

    @property
    def teacher_variant(self) -> str:
        """The teacher recipe's settings (``trainer.teacher``) that differ from the paper's
        (``epochs=2``); empty for the paper's recipe."""
        return _differences(self.trainer.teacher)

    @property
    def caveat(self) -> str:
        """Why this combination is weak by nature, and the setting to change; empty when it is
        not (said in the run's summary line, so a low student is never left unexplained)."""
        if self.from_file or not isinstance(self.extractor, ClassVisSettings):
            return ""
        convolutional = not is_dense(self.teacher)
        if convolutional and self.extractor.target == "score" and not (
                self.extractor.jitter or self.extractor.scale or self.extractor.clip):
            return ("the paper's ascent, without priors, finds adversarial noise in a "
                    "convolutional teacher (a student near chance): use extractor=deep_vis")
        hidden = convolutional or bool(getattr(self.teacher, "hidden", ()))
        if (self.dataset.name in CIFAR10_NAMES and self.extractor.bn == 0
                and (hidden or not is_dense(self.student))):
            return ("at the defaults the class visualizations of a small teacher carry little of "
                    "CIFAR-10 (students at 16-39% of 41-62% teachers, docs/results.md): "
                    "+experiment=deep_cifar10 is the recipe sized for it (a GPU)")
        if hidden and self.per_class == 1:
            suggested = 10 if convolutional else 100
            return ("one image per class cannot carry what a teacher's hidden layers know (the "
                    f"paper's Section 10): set extractor.per_class={suggested}")
        if hidden and is_dense(self.student) and self.trainer.student.start == "own_init":
            return ("a dense student learns little from the visualizations of a teacher with "
                    "hidden layers (34-49% on MNIST, docs/results.md): a convolutional student "
                    "(architecture@student=lenet5) reached 92.7% from an MLP teacher, 97.8% "
                    "from a LeNet-5")
        return ""

    @property
    def run_name(self) -> str:
        compressed = " + compress" if self.compress.enabled else ""
        given = f" [{self.teacher_from.kind}]" if self.teacher_from.given else ""
        return (f"{self.dataset_label} | {self.teacher_label}{given} -> {self.extractor_label} -> "
                f"{self.student.label}{compressed} | seed {self.seed}")


def _differences(settings: Any, skip: tuple[str, ...] = ()) -> str:
    """``name=value`` for every field of a settings dataclass that differs from its default."""
    defaults = type(settings)()
    return ", ".join(f"{f.name}={getattr(settings, f.name)}" for f in fields(settings)
                     if f.name not in skip
                     and getattr(settings, f.name) != getattr(defaults, f.name))
