"""A job of ``train.py``: what it is (one run or one job of a sweep) and the status file it leaves
in its folder for the sweep to count."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classvis.runsettings import RunSettings
from classvis.sweep import STATUS_FILE


@dataclass(frozen=True)
class Job:
    multirun: bool
    number: int | None
    overrides: str
    base_dir: Path
    output_dir: Path | None
    search: bool = False  # a trial of a hyperparameter search (the Optuna sweeper)
    parent_run: str | None = None  # the sweep's parent run
    # the config-group options the user chose (group -> option), Hydra's own groups left out
    choices: dict[str, str] = field(default_factory=dict)
    # what tells this job from the sweep's others: its values of the overrides the sweep varies
    varying: str = ""

    def run_name(self, settings: RunSettings) -> str:
        """What the run is, as the console tells it; trials of a search share everything else,
        so they get their number."""
        if self.search and self.number is not None:
            return f"{settings.run_name} | trial {self.number}"
        return settings.run_name

    def mlflow_name(self, settings: RunSettings) -> str:
        """The run's name in MLflow: in a sweep, what varies first (``dataset=mnist
        table5=class_vis | mnist | linear -> class_vis -> linear | seed 0``, a search's
        ``trial 3: extractor.l2=0.4 | ...``), since the runs table shows a name's first
        characters only; the description follows."""
        prefix = self.varying
        if self.search and self.number is not None:
            prefix = f"trial {self.number}" + (f": {prefix}" if prefix else "")
        return f"{prefix} | {settings.run_name}" if prefix else settings.run_name


def write_status(job: Job, status: str, **details: Any) -> None:
    if job.output_dir is None:
        return
    job.output_dir.mkdir(parents=True, exist_ok=True)
    record = {"status": status, "job": job.number, "overrides": job.overrides, **details}
    (job.output_dir / STATUS_FILE).write_text(json.dumps(record, indent=2))
