"""The tracking group's settings (``tracking.*``): which store, which experiment, what a run
logs. Importing this module imports nothing of MLflow."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from classvis.validation import require, writable_folder

IN_MEMORY = ("sqlite://", "sqlite:///:memory:")
# the stores MLflow's tracking client opens (SQLAlchemy dialects may carry a driver: mysql+pymysql)
URI_SCHEMES = frozenset({"sqlite", "http", "https", "postgresql", "mysql", "mssql", "file",
                         "databricks"})


@dataclass(frozen=True)
class TrackingSettings:
    """``uri``: an MLflow tracking URI (``sqlite:///path.db``, ``http://host:5000``, ...).
    ``artifact_dir``: where a new experiment in a local SQLite store keeps its artifacts
    (default: ``mlartifacts`` beside the database). ``stale_after_s``: a RUNNING run on another
    host with no heartbeat for this long counts as dead (``liveness``). ``system_metrics``:
    MLflow samples CPU, memory (and GPU, with ``nvidia-ml-py``) every second into ``system/*``.
    ``log_models``: which trained networks become MLflow models (``track.models``).
    ``retry_for_s``: how long a job waits for a busy or unreachable store before it fails.
    ``per_class_metrics``: per-class scores as metrics too (else as tables only)."""

    uri: str
    experiment: str
    artifact_dir: str | None = None
    system_metrics: bool = False
    stale_after_s: float = 600.0
    retry_for_s: float = 120.0
    log_models: Literal["student", "all", "none"] = "student"
    per_class_metrics: bool = False

    @property
    def heartbeat_every(self) -> float:
        return min(30.0, self.stale_after_s / 4)

    def check(self, key: str) -> None:
        require(bool(self.uri), f"{key}.uri", "an MLflow tracking URI", self.uri)
        require(math.isfinite(self.stale_after_s) and self.stale_after_s > 0,
                f"{key}.stale_after_s", "a number of seconds > 0", self.stale_after_s)
        require(math.isfinite(self.retry_for_s) and self.retry_for_s >= 0,
                f"{key}.retry_for_s", "a number of seconds >= 0", self.retry_for_s)
        require(self.uri not in IN_MEMORY, f"{key}.uri", "a store that outlives the run (an "
                "in-memory SQLite store loses every run; e.g. sqlite:///mlflow.db)", self.uri)
        require(bool(self.experiment.strip()), f"{key}.experiment", "an experiment name",
                self.experiment)
        scheme = self.uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in self.uri else ""
        require((scheme in URI_SCHEMES and "://" in self.uri) or scheme == "file"
                or self.uri == "databricks", f"{key}.uri",
                "an MLflow tracking URI (sqlite:///path.db, http(s)://host:port, "
                "postgresql://..., mysql://..., file:///folder)", self.uri)
        if self.sqlite_path is not None:
            writable_folder(self.sqlite_path.parent, f"{key}.uri")
            require(not self.sqlite_path.is_dir(), f"{key}.uri",
                    "an SQLite database file (a folder is there)", self.uri)
        if self.artifact_dir is not None:
            writable_folder(self.artifact_dir, f"{key}.artifact_dir")

    @property
    def sqlite_path(self) -> Path | None:
        if self.uri.startswith("sqlite:///"):
            return Path(self.uri[len("sqlite:///"):])
        return None


def absolute_uri(uri: str, base: Path) -> str:
    """Make a relative ``sqlite:///file.db`` URI absolute against ``base``."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base / uri[len("sqlite:///"):]).resolve())
    return uri
