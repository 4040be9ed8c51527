"""A Hydra sweeper over Optuna >= 4 (``hydra/sweeper=classvis_optuna``), ask-and-tell.

Every trial is one job of the sweep (one MLflow run); the study can live in a database
(``storage``), so a re-run continues it: trials already COMPLETE are not repeated (the search runs
until the study holds ``n_trials`` of them), the sampler learns from them, and trials a killed
process left RUNNING are marked FAIL. ``objectives`` names the run metrics to optimise, one
direction each; two or more make a multi-objective search whose Pareto front is printed.
The sweep folder gets ``optimization_results.yaml`` and ``optimization_history.png``.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
RESULTS = "optimization_results.yaml"
HISTORY = "optimization_history.png"


class SweeperConfigError(ValueError):
    """A bad sweeper setting, named by its key (``hydra.sweeper.<key>``)."""


class SearchFailed(RuntimeError):
    """More trials failed than ``hydra.sweeper.max_failure_rate`` allows."""


def distribution(override: Override) -> Any:
    """The Optuna distribution of one search dimension: choice(...) -> categorical;
    range(a, b, step) -> integers; interval(a, b) -> floats, integers when both ends are
    integers (``int(interval(...))``), log-scaled when tagged ``log``."""
    import optuna.distributions as d

    value = override.value()
    if isinstance(value, ChoiceSweep):
        return d.CategoricalDistribution([v if isinstance(v, (int, float, bool)) else str(v)
                                          for v in value.list])
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if (isinstance(start, int) and isinstance(stop, int) and isinstance(step, int)
                and step > 0):
            return d.IntDistribution(start, stop - 1, step=step)
        choices: list[Any] = list(override.sweep_iterator())
        return d.CategoricalDistribution(choices)
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return d.IntDistribution(value.start, value.end, log=log_scale)
        assert value.start is not None and value.end is not None  # an interval has both ends
        return d.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise SweeperConfigError(f"hydra.sweeper.params.{override.get_key_element()}: expected "
                             f"choice(...), range(...) or interval(...), got {override.input_line}")


class OptunaSweeper(Sweeper):
    def __init__(self, objectives: dict[str, str], study_name: str, storage: str | None,
                 n_trials: int, n_jobs: int, sampler: str, seed: int | None,
                 max_failure_rate: float, params: dict[str, str] | None) -> None:
        self.objectives = dict(objectives)
        self.study_name, self.storage = study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.sampler_name, self.seed = sampler, seed
        self.max_failure_rate = max_failure_rate
        self.params = dict(params or {})
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweep_dir = Path(config.hydra.sweep.dir)

    def _check(self) -> None:
        for key, value in self.objectives.items():
            if value not in ("maximize", "minimize"):
                raise SweeperConfigError(f"hydra.sweeper.objectives.{key}: expected maximize or "
                                         f"minimize, got {value!r}")
        if not self.objectives:
            raise SweeperConfigError("hydra.sweeper.objectives: expected at least one metric")
        if self.n_trials < 1 or self.n_jobs < 1:
            raise SweeperConfigError("hydra.sweeper.n_trials/n_jobs: expected integers >= 1, "
                                     f"got {self.n_trials}/{self.n_jobs}")
        if self.sampler_name not in ("auto", "tpe", "random", "nsga2"):
            raise SweeperConfigError("hydra.sweeper.sampler: expected auto, tpe, random or "
                                     f"nsga2, got {self.sampler_name!r}")

    def _sampler(self, offset: int = 0) -> Any:
        """The sampler, its seed moved on by ``offset`` (the trials the study already holds), so a
        re-run of a seeded search does not draw its first trials again."""
        import optuna

        seed = None if self.seed is None else self.seed + offset
        name = self.sampler_name
        if name == "auto":
            name = "nsga2" if len(self.objectives) > 1 else "tpe"
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def _study(self) -> Any:
        import optuna

        if self.storage and self.storage.startswith("sqlite:///"):
            path = Path(self.storage[len("sqlite:///"):])
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "ab"):
                    pass
            except OSError as error:
                raise SweeperConfigError(f"hydra.sweeper.storage: expected a writable database "
                                         f"path, got {self.storage!r} ({error})") from None
        directions: list[Any] = list(self.objectives.values())
        try:
            return optuna.create_study(
                study_name=self.study_name, storage=self.storage, sampler=self._sampler(),
                directions=directions, load_if_exists=True)
        except ValueError as error:  # e.g. the stored study optimises other directions
            raise SweeperConfigError(f"hydra.sweeper.study_name: {error}") from None

    def sweep(self, arguments: list[str]) -> None:
        """Run the search; a bad setting or too many failed trials end it with one line (and
        the sweep's parent run FAILED with the reason)."""
        # classvis.sweep pulls in torch (2.0 s to import): Hydra imports every plugin module when
        # it scans for plugins, in runs that do not search too
        from classvis.sweep import fail_parent

        try:
            self._search(arguments)
        except (SweeperConfigError, SearchFailed) as error:
            fail_parent(self.sweep_dir, str(error))
            print(f"classvis: error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2 if isinstance(error, SweeperConfigError) else 1) from None

    def _search(self, arguments: list[str]) -> None:
        from optuna.trial import TrialState

        self._check()
        parser = OverridesParser.create()
        search = [o for o in parser.parse_overrides(
            [f"{key}={value}" for key, value in self.params.items()]
            + [a for a in arguments if "=" in a]) if o.is_sweep_override()]
        fixed = [str(o.input_line) for o in parser.parse_overrides(arguments)
                 if not o.is_sweep_override()]
        space = {o.get_key_element(): distribution(o) for o in search}
        study = self._study()
        study.sampler = self._sampler(offset=len(study.trials))
        stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
        for trial in stale:  # a killed process's trials: they never reported
            study.tell(trial.number, state=TrialState.FAIL)
        if stale:
            log.info("marked %d trial(s) a killed sweep left RUNNING as FAIL", len(stale))
        done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        to_go = max(0, self.n_trials - len(done))
        log.info("study %s: %d trial(s) complete, %d to run (n_trials=%d)", self.study_name,
                 len(done), to_go, self.n_trials)
        failures = attempts = 0
        while to_go > 0:
            batch = [study.ask(space) for _ in range(min(self.n_jobs, to_go))]
            overrides = [fixed + [f"{key}={trial.params[key]}" for key in space]
                         for trial in batch]
            assert self.launcher is not None  # made in setup
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, job in zip(batch, returns, strict=True):
                values = self._values(job)
                attempts += 1
                if values is None:
                    failures += 1
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, values)
                    to_go -= 1
            if failures > self.max_failure_rate * max(attempts, 1) and attempts >= 2:
                raise SearchFailed(f"{failures} of {attempts} trials failed "
                                   f"(hydra.sweeper.max_failure_rate={self.max_failure_rate})")
        self._report(study)

    def _values(self, job: Any) -> list[float] | None:
        """The trial's objective values from what the task returned (a mapping of metrics, or
        one number for a single objective); None when the job failed."""
        try:
            returned = job.return_value
        except Exception:  # the job raised
            return None
        if isinstance(returned, dict):
            values = [returned.get(key) for key in self.objectives]
        elif len(self.objectives) == 1:
            values = [returned]
        else:
            values = [None]
        floats = [float(v) for v in values if v is not None]
        if len(floats) != len(values) or not all(math.isfinite(v) for v in floats):
            return None
        return floats

    def _report(self, study: Any) -> None:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        names = list(self.objectives)
        complete = [t for t in study.trials if t.state.name == "COMPLETE"]
        results: dict[str, Any] = {"study_name": self.study_name, "storage": self.storage,
                                   "objectives": self.objectives, "trials": len(study.trials),
                                   "complete": len(complete)}
        if len(names) == 1:
            best = study.best_trial
            results.update(best_trial=best.number, best_value=best.value,
                           best_params=dict(best.params))
            scores = {t.value for t in complete}
            if len(complete) > 1 and len(scores) == 1:  # the searched settings changed nothing
                results["same_value"] = best.value
            log.info("Best value (%s): %s", names[0], best.value)
            log.info("Best parameters: %s", best.params)
        else:
            front = sorted(study.best_trials, key=lambda t: t.values)
            results["pareto_front"] = [
                {"trial": t.number, **dict(zip(names, t.values, strict=True)),
                 "params": dict(t.params)} for t in front]
            log.info("Pareto front (%s):", ", ".join(names))
            for t in front:
                log.info("  trial %d: %s  %s", t.number,
                         ", ".join(f"{n}={v:.4g}" for n, v in zip(names, t.values, strict=True)),
                         t.params)
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / RESULTS)
        self._history(complete, names)

    def _history(self, complete: Sequence[Any], names: list[str]) -> None:
        """Each objective against the trial number, with the best so far."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.6), squeeze=False,
                                 layout="constrained")
        for ax, (index, name) in zip(axes[0], enumerate(names), strict=True):
            points = sorted((t.number, t.values[index]) for t in complete)
            ax.plot([n for n, _ in points], [v for _, v in points], "o", label="trial")
            pick = max if self.objectives[name] == "maximize" else min
            best, running = [], None
            for _, value in points:
                running = value if running is None else pick(running, value)
                best.append(running)
            ax.step([n for n, _ in points], best, where="post", label="best so far")
            ax.set_xlabel("trial")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"Optuna study {self.study_name}: optimisation history", fontsize=10)
        fig.savefig(self.sweep_dir / HISTORY, dpi=110)
        plt.close(fig)
