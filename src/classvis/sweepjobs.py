"""The data of every job of a sweep, checked before the first job runs.

A sweep over three datasets should not run two and then fail on the third for missing files.
Before Hydra's basic sweeper (also under the joblib and submitit launchers) starts its jobs, each
job's config is composed the way the sweeper will compose it, and the dataset it names is found,
or downloaded, or refused: one line per missing dataset, exit status 2, nothing run or written.
A job's other config errors stay that job's (it is reported FAILED and the others run); a search
(the Optuna sweeper) draws its jobs as it goes, so each trial checks its own data.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from classvis.from_config import run_settings
from classvis.naming import override_key
from classvis.validation import ConfigError

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
DATA_KEYS = ("dataset.root", "dataset.path", "dataset.test_root")


def job_overrides(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, in the basic sweeper's order (its ``params``, then the command
    line's, a later value of a key replacing an earlier one), or None for another sweeper."""
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    choices: dict[str, list[str]] = {}
    for override in _parsed_sweep(config):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                return None  # the sweeper refuses a range of floats itself
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*choices.values())]


def _parsed_sweep(config: DictConfig) -> list:
    """The sweep's overrides, parsed: its sweeper's ``params`` (a preset's axes, a search's
    space), then the command line's."""
    params = OmegaConf.to_container(config.hydra.sweeper.get("params") or OmegaConf.create({}))
    lines = [f"{key!s}={value!s}"
             for key, value in (params if isinstance(params, dict) else {}).items()]
    lines += [str(item) for item in config.hydra.overrides.task]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    return list(parser.parse_overrides(lines))


def varying_keys(config: DictConfig) -> list[str]:
    """The override keys the sweep varies, in order (``dataset``, ``experiment/table5``,
    ``seed``): what tells its jobs apart, for any sweeper (a search's space included)."""
    varying: dict[str, bool] = {}
    for override in _parsed_sweep(config):
        key = override_key(override.get_key_element())
        varying.pop(key, None)  # a later value of a key replaces an earlier one
        varying[key] = override.is_sweep_override()
    return [key for key, varies in varying.items() if varies]


def missing_data(config: DictConfig, base_dir: Path) -> list[str]:
    """One line per distinct data error of the sweep's jobs (naming the first job it hits and
    how many more), empty when every job's data is there (or a job fails for another reason)."""
    jobs = job_overrides(config)
    if jobs is None:
        return []
    loader = GlobalHydra.instance().config_loader()
    errors: dict[str, list[tuple[int, str]]] = {}
    for number, overrides in enumerate(jobs):
        try:
            job_config = loader.load_sweep_config(config, overrides)
            with open_dict(job_config):
                del job_config["hydra"]  # what the job's task function is handed
        except Exception:  # noqa: BLE001 - Hydra reports a config it cannot compose itself
            continue
        try:
            run_settings(job_config, base_dir)
        except ConfigError as error:
            if error.key in DATA_KEYS:
                errors.setdefault(str(error), []).append((number, " ".join(overrides)))
    lines = []
    for message, hit in errors.items():
        (number, first), more = hit[0], len(hit) - 1
        also = f" and {more} more job{'s' if more > 1 else ''}" if more else ""
        lines.append(f"classvis: error (job {number}: {first}{also}): invalid config: "
                     f"{message}")
    return lines
