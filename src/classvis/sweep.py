"""A Hydra multirun is one MLflow run (the Hydra callback ``SweepSummary``).

Before the jobs start it creates the store and experiment once (so parallel jobs do not race to)
and opens the sweep's parent run; its id goes to a file in the sweep folder, where every job reads
it, also in joblib workers, under submitit or on a Slurm node, and nests its run under it
(``mlflow.parentRunId``). When the sweep ends ``sweepresult`` records in the parent how many
jobs finished, failed or were skipped as already FINISHED, every job's outcome and the sweep's
table (each config's main metrics, mean ± sd over seeds), and ends it FINISHED, or FAILED when a
job failed.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from classvis import runkeys as keys
from classvis import watchdog
from classvis.from_config import resolved_mapping
from classvis.naming import what_it_runs
from classvis.provenance import commit_tags
from classvis.sweepjobs import missing_data, varying_keys
from classvis.sweepresult import close_parent, end_parent_failed, outcome_counts
from classvis.track.connect import connect
from classvis.track.liveness import heartbeat, identity, process_alive
from classvis.track.settings import TrackingSettings, absolute_uri
from classvis.track.store import Store
from classvis.validation import parse

log = logging.getLogger("classvis")
STATUS_FILE = "classvis_status.json"  # each job's outcome, in its own folder
SWEEP_FILE = "classvis_sweep.json"    # the sweep's parent run, in the sweep folder
VARYING = "varying"  # in it: the override keys the sweep varies
PRESET = "+experiment="
# the parent runs' heartbeats, by run id: kept out of the callback, which the joblib and submitit
# launchers pickle to their workers (a running thread cannot be pickled)
_HEARTBEATS: dict[str, contextlib.ExitStack] = {}


def sweep_record(sweep_dir: Path) -> dict[str, str] | None:
    """What ``on_multirun_start`` wrote to the sweep folder (parent_run_id, experiment_id,
    tracking_uri), if it opened a parent run."""
    try:
        record = json.loads((sweep_dir / SWEEP_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "parent_run_id" in record else None


class SweepDirInUse(SystemExit):
    """Another live sweep writes to this sweep folder."""


def sweep_dir_in_use(sweep_dir: Path) -> None:
    """Refuse, in one line and with exit status 2, a sweep folder that a sweep still running on
    this host writes to (two sweeps given one ``hydra.sweep.dir``): their jobs' folders and
    status files would mix. A folder of a sweep that ended is reused (a re-run resumes it)."""
    record = sweep_record(sweep_dir)
    if record is None or record.get(keys.PID) in (None, str(os.getpid())):
        return
    if record.get(keys.HOST) != socket.gethostname() or not process_alive(record):
        return
    print(f"classvis: error: hydra.sweep.dir: {sweep_dir} is in use by the sweep of process "
          f"{record[keys.PID]} (MLflow run {record['parent_run_id']}); expected a folder of "
          f"its own (the default, multirun/<date>/<time>, is one per process)",
          file=sys.stderr, flush=True)
    raise SweepDirInUse(2)


def sweep_varying(config: DictConfig) -> list[str]:
    """The override keys the sweep varies (its jobs' names start with their values)."""
    try:
        return varying_keys(config)
    except Exception as error:  # noqa: BLE001 - the names only lose their prefix
        log.warning("could not tell which overrides the sweep varies: %s", error)
        return []


def job_sweep(sweep_dir: Path) -> tuple[str | None, list[str]]:
    """What a job of the sweep whose folder is ``sweep_dir`` reads of it: the parent run (None if
    the sweep opened none) and the override keys the sweep varies (none if unknown)."""
    record = sweep_record(sweep_dir)
    if record is None:
        return None, []
    varying = record.get(VARYING)
    return (str(record["parent_run_id"]),
            [str(key) for key in varying] if isinstance(varying, list) else [])


def sweep_name(overrides: list[str], started: datetime.datetime) -> str:
    """``sweep deep: seed=0,1,2 dataset=fmnist | 2026-11-30 06:35``: the preset, the command
    line's other overrides (where results go and how progress shows aside), the start time."""
    preset = next((item[len(PRESET):] for item in overrides if item.startswith(PRESET)), None)
    rest = " ".join(item for item in what_it_runs(overrides) if not item.startswith(PRESET))
    what = f"sweep {preset}" if preset else "sweep"
    return f"{what}: {rest}"[:400].rstrip(": ") + f" | {started:%Y-%m-%d %H:%M}"


def sweep_params(config: DictConfig) -> dict[str, str]:
    """What the sweep varies: the preset's sweeper params, then the command line's overrides."""
    preset = OmegaConf.to_container(config.hydra.sweeper.get("params") or OmegaConf.create({}))
    params = ({_param_key(str(key)): str(value) for key, value in preset.items()}
              if isinstance(preset, dict) else {})
    for item in config.hydra.overrides.task:
        key, _, value = str(item).partition("=")
        params[_param_key(key)] = value
    return params


def _param_key(override_key: str) -> str:
    """``+table5`` -> ``sweep.table5``: an MLflow param name (letters, digits, ``_-. :/``)."""
    return "sweep." + re.sub(r"[^0-9A-Za-z_\-. :/]", "_", override_key.lstrip("+~"))


def job_records(sweep_dir: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(sweep_dir.rglob(STATUS_FILE)):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: (r.get("job") is None, r.get("job") or 0))


SWEEP_PID = watchdog.PID_VARIABLE  # the sweep's process, for the worker processes it starts
SWEEP_STARTED = watchdog.STARTED_VARIABLE  # its start time (a reused PID is another process)
SWEEP_HOST = "CLASSVIS_SWEEP_HOST"


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.update(  # inherited by joblib's worker processes
            {SWEEP_PID: str(os.getpid()), SWEEP_HOST: socket.gethostname(),
             SWEEP_STARTED: identity()[keys.PID_STARTED]})
        # stops what a killed sweep leaves, and ends its runs
        watchdog.start(os.getpid(), os.environ[SWEEP_STARTED],
                       Path(config.hydra.sweep.dir).resolve() / SWEEP_FILE)
        refuse_missing_data(config)
        try:
            tracking = resolved_mapping(config.tracking, "tracking")
            tracking["uri"] = absolute_uri(tracking["uri"], Path.cwd())
            settings = parse(TrackingSettings, tracking, "tracking")
            experiment_id = connect(settings)
        except Exception as error:  # each job reports its own config errors
            log.warning("could not prepare the tracking store: %s", error)
            return
        try:
            overrides = [str(item) for item in config.hydra.overrides.task]
            sweep_dir = Path(config.hydra.sweep.dir)
            tags = {keys.KIND: keys.SWEEP_KIND, keys.HYDRA_OVERRIDES: " ".join(overrides),
                    keys.SWEEP_DIR: str(sweep_dir.resolve()), keys.SOURCE_NAME: "train.py",
                    **commit_tags(), **identity()}
            sweep_dir_in_use(sweep_dir)
            store = Store(settings.uri)
            for run_id, reason in store.reap_dead_sweeps(experiment_id,
                                                         settings.stale_after_s):
                print(f"classvis: marked the sweep's parent run {run_id} KILLED: {reason}",
                      flush=True)
            parent = store.create_run(experiment_id,
                                      sweep_name(overrides, datetime.datetime.now()), tags, {})
            sweep_dir.mkdir(parents=True, exist_ok=True)
            (sweep_dir / SWEEP_FILE).write_text(json.dumps(
                {"parent_run_id": parent, "experiment_id": experiment_id,
                 "tracking_uri": settings.uri, VARYING: sweep_varying(config),
                 **identity()}, indent=2))
        except SweepDirInUse:
            raise
        except Exception as error:
            log.warning("could not open the sweep's parent run (the jobs' runs will not be "
                        "nested): %s", error)
            return
        try:
            store.log_params(parent, sweep_params(config))
        except Exception as error:  # the sweep and its nesting do not depend on them
            log.warning("could not log the sweep's overrides to its parent run: %s", error)
        beats = _HEARTBEATS.setdefault(parent, contextlib.ExitStack())
        beats.enter_context(heartbeat(store.client, parent, settings.heartbeat_every))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep = sweep_record(sweep_dir)
        parent = None if sweep is None else sweep["parent_run_id"]
        beats = _HEARTBEATS.pop(parent or "", None)
        if beats is not None:
            beats.close()
        records = job_records(sweep_dir)
        failed = [r for r in records if r["status"] == "FAILED"]
        where = f"; MLflow run {parent}" if parent else ""
        print(f"classvis: sweep finished: {outcome_counts(records)} ({sweep_dir}{where})",
              flush=True)
        for record in failed:
            print(f"classvis:   job {record['job']} ({record['overrides']}) failed: "
                  f"{record.get('error')}", file=sys.stderr, flush=True)
        if sweep is not None:
            try:
                close_parent(sweep_dir, sweep, records)
                mark_ended(sweep_dir)
            except Exception as error:  # a full disk, a read-only store
                told = f"{type(error).__name__}: {error}".splitlines()[0][:1000]
                ended = end_parent_failed(sweep, f"could not record the sweep: {told}")
                if ended:
                    mark_ended(sweep_dir)
                print(f"classvis: error: could not record the sweep in its parent run {parent}: "
                      f"{told}; " + ("it is marked FAILED with the reason" if ended else
                                     "it stays RUNNING until the next sweep into its "
                                     "experiment marks it KILLED"),
                      file=sys.stderr, flush=True)
                raise SystemExit(1) from None
        if failed:
            raise SystemExit(1)


def refuse_missing_data(config: DictConfig) -> None:
    """Every job's data found (or downloaded) before the first job, else one line per missing
    dataset and exit status 2, before the store, the parent run or a job folder exists."""
    try:
        lines = missing_data(config, Path(config.hydra.runtime.cwd))
    except Exception as error:  # each job still checks its own data
        log.warning("could not check the sweep's data before its first job: %s", error)
        return
    if lines:
        for line in lines:
            print(line, file=sys.stderr)
        print("classvis: error: the sweep's data is missing (see above); no job ran",
              file=sys.stderr, flush=True)
        raise SystemExit(2)


def mark_ended(sweep_dir: Path) -> None:
    """Note in the sweep record that the parent run is ended (the watchdog leaves it alone)."""
    with contextlib.suppress(OSError, ValueError):
        path = sweep_dir / SWEEP_FILE
        path.write_text(json.dumps({**json.loads(path.read_text()), watchdog.ENDED: True},
                                   indent=2))


def fail_parent(sweep_dir: Path, reason: str) -> None:
    """End the sweep's parent run FAILED with ``reason``, when the sweep stops before its end
    (a sweeper that refuses its settings): otherwise it would stay RUNNING."""
    record = sweep_record(sweep_dir)
    if record is None:
        return
    parent = record["parent_run_id"]
    _HEARTBEATS.pop(parent, contextlib.ExitStack()).close()
    try:
        Store(record["tracking_uri"]).end_run(parent, "FAILED", {}, {keys.ERROR: reason}, None,
                                              "sweep")
        mark_ended(sweep_dir)
    except Exception as error:
        log.warning("could not end the sweep's parent run %s: %s", parent, error)
