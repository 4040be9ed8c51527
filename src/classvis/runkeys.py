"""The names of what a run records in MLflow, defined once.

The code that writes a run's tags and metrics (``app``, ``artifacts``, ``privacy``, ``track``) and
the code that reads them back (the report, resume, ``export``) use these names, so renaming a key
cannot silently leave a reader looking for the old one. Metric values are fractions, not percent.
"""

from __future__ import annotations

import re

# Tags: what the run is (set when it starts; the report groups runs by these, never by names).
DATASET = "dataset"
EXTRACTOR = "extractor"
PER_CLASS = "per_class"
TEACHER = "teacher"
TEACHER_DENSE = "teacher.dense"       # true | false: the teacher has no convolutions (its trait)
STUDENT = "student"
SEED = "seed"
DEVICE = "device"
DEVICE_NAME = "device_name"
HYDRA_OVERRIDES = "hydra.overrides"
HYDRA_JOB_NUM = "hydra.job_num"
CLASSES = "classes"                   # a JSON list when the run used some classes
ONE_VS_REST = "one_vs_rest"
ONE_VS_REST_BALANCE = "one_vs_rest_balance"
SWAP = "swap"
SWAP_CLASS = "swap.class"
SWAP_TARGETS = "swap.targets"
COMPRESS = "compress"
CAVEAT = "caveat"                     # why the combination is weak by nature (RunSettings.caveat)
SYNTHETIC_FILE = "synthetic_file"     # a student trained from an exported file
FILE_HEADER_PREFIX = "synthetic_file."  # + run_id, experiment: the run that made the file
CONFIG_DIGEST = "classvis.config_digest"  # resume: an identical resolved config
GIT_COMMIT = "git_commit"
GIT_DIRTY = "git_dirty"
SOURCE_NAME = "mlflow.source.name"
SOURCE_GIT_COMMIT = "mlflow.source.git.commit"

# Tags: which process runs it (liveness: a RUNNING run whose process is gone is marked KILLED);
# removed when the run ends.
HOST = "classvis.host"
PID = "classvis.pid"
PID_STARTED = "classvis.pid_started"  # the process's start time: a reused PID is another process
HEARTBEAT = "classvis.heartbeat"      # unix seconds, refreshed while the run lasts
LIVENESS = (HOST, PID, PID_STARTED, HEARTBEAT)

# Tags: how it went (set as the run ends).
TEACHER_ORIGIN = "teacher_origin"     # trained | cache | weights | file
TEACHER_KEY = "classvis.teacher_key"  # the cache key, or the given weights' content digest
TEACHER_WEIGHTS = "teacher_weights"   # teacher_from=weights: the file
TEACHER_WEIGHTS_DIGEST = "teacher_weights_digest"
DONOR_TEACHER_ORIGIN = "donor_teacher_origin"
DONOR_TEACHER_KEY = "classvis.donor_teacher_key"
CLASS_NAMES = "classvis.class_names"  # a JSON list, in label order
TEST_SET = "test_set"                 # real | unavailable (a file's student, dataset=none)
TRAINING_SET = "training_set"         # real | test split only | none (a given teacher's run)
PRIVACY_SKIPPED = "privacy_skipped"   # why the privacy measure was not taken
ERROR = "error"                       # why a run FAILED
STATUS_REASON = "status_reason"

# Bookkeeping tags live under "classvis." (the tags panel and the compare view keep them
# together, apart from what the run is); runs recorded before 2026-12-07 have them unprefixed.
LEGACY = {CONFIG_DIGEST: "config_digest", TEACHER_KEY: "teacher_key",
          DONOR_TEACHER_KEY: "donor_teacher_key", CLASS_NAMES: "class_names"}


def tag_of(tags: dict[str, str], key: str, default: str | None = None) -> str | None:
    """A run's tag ``key``, also under its older name (``LEGACY``)."""
    found = tags.get(key)
    if found is None and key in LEGACY:
        found = tags.get(LEGACY[key])
    return default if found is None else found


# A sweep's parent run carries KIND = SWEEP_KIND and its jobs' runs PARENT_RUN (MLflow's own tag,
# which nests them under it in the UI); the report's summary runs carry REPORT_KIND. A run without
# KIND is a training run.
KIND = "classvis.kind"
REPORT_KIND = "report"
SWEEP_KIND = "sweep"
PARENT_RUN = "mlflow.parentRunId"
NOTE = "mlflow.note.content"          # the run's description on its page in the UI
SWEEP_DIR = "sweep_dir"

# A sweep's parent run: how many jobs finished, failed, or were skipped as already FINISHED.
SWEEP_JOBS = "sweep/jobs"
SWEEP_FINISHED = "sweep/finished"
SWEEP_FAILED = "sweep/failed"
SWEEP_SKIPPED = "sweep/skipped"

# A sweep's parent run: its best config, the best run of that config, a search's best trial, and
# why its result needs a second look (a search whose every trial scored the same).
BEST_CONFIG = "best.config"
BEST_RUN = "best.run_id"
BEST_RUN_NAME = "best.run_name"
BEST_TRIAL = "best.trial"
BEST_VALUE = "best/value"
WARNING = "warning"

# Artifacts read back by other tools.
SYNTHETIC_SET_ARTIFACT = "synthetic_set.safetensors"  # the run's synthetic set (export)
SYNTHETIC_SET_FORMAT = "classvis.synthetic_set/1"  # its header's format field

# Metrics.
SYNTHETIC_IMAGES = "synthetic/images"
TOTAL_TIME = "time/total"
LOG_TIME = "time/log"
TEACHER_LOSS = "teacher/loss"
STUDENT_LOSS = "student/loss"
# the same curve as log10 (the first step's loss is orders of magnitude above the rest, which
# flattens a linear axis)
STUDENT_LOG10_LOSS = "student/log10_loss"
SYNTHETIC_AGREEMENT = "student/synthetic_agreement"
VIEW_AGREEMENT = "student/view_agreement"  # on held-out views of the synthetic images
TEACHER_CONFIDENCE = "teacher/synthetic_confidence"  # mean over classes
TEACHER_CONFIDENCE_MIN = "teacher/synthetic_confidence_min"  # the least confident class
FILE_TEACHER_ACCURACY = "synthetic_file/teacher_accuracy"
DISTANCE_RATIO = "privacy/distance_ratio"


def choice(group: str) -> str:
    """The tag holding the option the user chose for a config group (``choice.extractor``:
    ``deep_vis``; ``choice.teacher``: the teacher's architecture), as Hydra composed it."""
    return f"choice.{group}"


def variant(kind: str) -> str:
    """The tag saying how ``kind`` (extractor, teacher, student) differs from its defaults."""
    return f"{kind}_variant"


def accuracy(model: str) -> str:
    """``teacher/accuracy``, ``student/accuracy``, ``compressed/accuracy``, ..."""
    return f"{model}/accuracy"


def measure(model: str, name: str) -> str:
    """Another per-model number: ``teacher/parameters``, ``compressed/compression_ratio``, ..."""
    return f"{model}/{name}"


def per_class(model: str, name: str, class_name: str) -> str:
    """``student/f1/T-shirt_top``: a per-class metric (precision, recall, f1, false_positives,
    false_negatives) of one model."""
    return f"{model}/{name}/{metric_key(class_name)}"


def stage_time(stage: str) -> str:
    return f"time/{stage}"


def extract(name: str) -> str:
    return f"extract/{name}"


def privacy(name: str) -> str:
    return f"privacy/{name}"


def metric_key(name: str) -> str:
    """A class name as one metric-key segment: MLflow allows letters, digits, ``_-. `` (a ``/``
    would split the key), so anything else becomes ``_`` (``T-shirt/top`` -> ``T-shirt_top``)."""
    return re.sub(r"[^0-9A-Za-z_\-. ]", "_", name).strip() or "_"
