"""The sweeper's settings (``hydra/sweeper=classvis_optuna``), registered with Hydra's config
store when Hydra scans its plugins. No ``from __future__ import annotations`` here: Hydra imports
plugin modules in a way that leaves string annotations unresolvable, and OmegaConf reads these
types at run time (hence ``Optional`` and ``Dict``)."""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore


@dataclass
class ClassvisOptunaConf:
    _target_: str = "hydra_plugins.classvis_optuna.sweeper.OptunaSweeper"
    # metric -> maximize | minimize, as the task returns them (classvis: student/accuracy,
    # synthetic/images, ...); two or more: a multi-objective search
    objectives: dict[str, str] = field(default_factory=lambda: {"student/accuracy": "maximize"})
    study_name: str = "classvis"
    # an Optuna storage URL (sqlite:///optuna.db, postgresql://...); null keeps the study in memory
    storage: str | None = None
    n_trials: int = 20            # COMPLETE trials the study should hold when the sweep ends
    n_jobs: int = 1               # trials asked for at once (run together by a parallel launcher)
    sampler: str = "auto"         # tpe | random | nsga2 | auto (nsga2 for several objectives)
    seed: int | None = None    # the sampler's seed
    max_failure_rate: float = 0.5  # stop when more trials than this fraction have failed
    params: dict[str, str] | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="classvis_optuna",
                             node=ClassvisOptunaConf, provider="classvis")


