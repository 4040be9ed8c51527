"""What a sweep's parent run records when the sweep ends: how many jobs finished, failed or were
skipped as already FINISHED, every job's outcome (``jobs.csv``), the sweep's table (each config's
main metrics, mean ± sd over seeds) as its note and ``summary.md``/``summary.csv``, a search's
study files; then it ends FINISHED, or FAILED when a job failed or the record could not be
written."""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path
from typing import Any

from classvis import runkeys as keys
from classvis.report.runs import RunRecord
from classvis.report.sweep import (
    ConfigResult,
    best_config,
    best_run,
    config_results,
    headline_of,
    parent_metrics,
    sweep_table,
)
from classvis.track.retry import FAILING_RETRY_S, retrying
from classvis.track.store import Store

SEARCH_FILES = ("optimization_results.yaml", "optimization_history.png")  # the Optuna sweeper's
NOTE_LIMIT = 8000  # MLflow's longest tag value


def status_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """How many of the sweep's jobs ended FINISHED, SKIPPED and FAILED."""
    return {status: sum(r["status"] == status for r in records)
            for status in ("FINISHED", "SKIPPED", "FAILED")}


def outcome_counts(records: list[dict[str, Any]]) -> str:
    """``3 jobs: 1 succeeded, 1 skipped as already FINISHED or RUNNING, 1 failed``: every
    outcome counted apart (a job skipped, or left to a run already RUNNING elsewhere, did not
    succeed here)."""
    count = status_counts(records)
    return (f"{len(records)} jobs: {count['FINISHED']} succeeded, {count['SKIPPED']} skipped as "
            f"already FINISHED or RUNNING, {count['FAILED']} failed")


def close_parent(sweep_dir: Path, sweep: dict[str, str], records: list[dict[str, Any]]) -> None:
    """Record the sweep's outcome and table in its parent run (``sweep``: its ``sweep_record``)
    and end it."""
    parent, store = sweep["parent_run_id"], Store(sweep["tracking_uri"])
    counts = status_counts(records)
    stored = store.runs([r["run_id"] for r in records if r.get("run_id")])
    runs = [RunRecord.of(run) for run in stored]
    ranked = config_results(runs)  # once, for the table and the parent's result
    table = sweep_table(runs, ranked)
    result_metrics, result_tags = sweep_result(runs, ranked[0], {run.run_id: run.run_name
                                                                 for run in stored},
                                               sweep_dir, records)
    lines = [f"{len(records)} jobs: {counts['FINISHED']} finished, {counts['FAILED']} failed, "
             f"{counts['SKIPPED']} skipped as already FINISHED (their earlier runs are in the "
             f"table)", ""]
    headline = headline_of(runs)
    if keys.BEST_CONFIG in result_tags and headline is not None:  # the answer, above the fold
        lines += [f"Best config: **{result_tags[keys.BEST_CONFIG]}**, {headline} "
                  f"{result_metrics[headline]:.2%} (mean over its seeds); its best run: "
                  f"{result_tags[keys.BEST_RUN_NAME]}", ""]
    lines.append(table.markdown())
    lines += [f"- job {r['job']} ({r['overrides']}) failed: {r.get('error')}"
              for r in records if r["status"] == "FAILED"]
    if (sweep_dir / SEARCH_FILES[0]).is_file():
        lines += ["", "## The search", "", "```yaml",
                  (sweep_dir / SEARCH_FILES[0]).read_text().strip(), "```"]
    markdown = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory(prefix="classvis-sweep-") as staging:
        folder = Path(staging)
        (folder / "summary.md").write_text(markdown)
        table.write_csv(folder / "summary.csv")
        for name in SEARCH_FILES:  # a search's study: its best trial or Pareto front, its history
            if (sweep_dir / name).is_file():
                (folder / name).write_bytes((sweep_dir / name).read_bytes())
        with (folder / "jobs.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["job", "status", "overrides", "run_id", "student_accuracy", "error"])
            writer.writerows([r.get("job"), r["status"], r.get("overrides", ""),
                              r.get("run_id", ""), r.get("student_accuracy", ""),
                              r.get("error", "")] for r in records)
        metrics = {keys.SWEEP_JOBS: float(len(records)),
                   keys.SWEEP_FINISHED: float(counts["FINISHED"]),
                   keys.SWEEP_FAILED: float(counts["FAILED"]),
                   keys.SWEEP_SKIPPED: float(counts["SKIPPED"])}
        note = markdown if len(markdown) <= NOTE_LIMIT else (
            markdown[:NOTE_LIMIT - 60] + "\n\n(cut short: the whole table is sweep/summary.md)\n")
        tags = {keys.NOTE: note}
        metrics.update(result_metrics)
        tags.update(result_tags)
        if counts["FAILED"]:
            tags[keys.ERROR] = f"{counts['FAILED']} of {len(records)} jobs failed"
        store.end_run(parent, "FAILED" if counts["FAILED"] else "FINISHED", metrics, tags,
                      folder, "sweep")


def sweep_result(runs: list[RunRecord], results: list[ConfigResult], names: dict[str, str],
                 sweep_dir: Path, records: list[dict[str, Any]]
                 ) -> tuple[dict[str, float], dict[str, str]]:
    """The parent's result from its configs ranked best first (``config_results``): each
    config's and the best config's metrics, the best config and its best run as tags; a
    search's best trial and value, and its warning when every trial scored the same (also
    printed)."""
    headline = headline_of(runs)
    metrics = parent_metrics(results, headline)
    tags: dict[str, str] = {}
    best = best_config(results, headline)
    if best is not None and headline is not None:
        run = best_run(best, headline)
        tags.update({keys.BEST_CONFIG: best.label, keys.BEST_RUN: run.run_id,
                     keys.BEST_RUN_NAME: names.get(run.run_id, "")})
    search = search_results(sweep_dir)
    if "best_value" in search:
        metrics[keys.BEST_VALUE] = float(search["best_value"])
        tags[keys.BEST_TRIAL] = str(search["best_trial"])
        trial_run = next((r.get("run_id") for r in records
                          if r.get("job") == search["best_trial"] and r.get("run_id")), None)
        if trial_run:  # the best trial ran in this invocation (a stored study may hold others)
            tags.update({keys.BEST_RUN: trial_run, keys.BEST_RUN_NAME: names.get(trial_run, "")})
    if search.get("same_value") is not None:
        tags[keys.WARNING] = (
            f"every one of the search's {search['complete']} complete trials scored "
            f"{search['same_value']:.6g} ({', '.join(search['objectives'])}): the searched "
            f"settings do not move the objective here; widen hydra.sweeper.params or use a "
            f"harder dataset")
        print(f"classvis: warning: {tags[keys.WARNING]}", file=sys.stderr, flush=True)
    return metrics, tags


def search_results(sweep_dir: Path) -> dict[str, Any]:
    """What the search sweeper wrote (``optimization_results.yaml``), empty for other sweeps."""
    from omegaconf import OmegaConf

    path = sweep_dir / SEARCH_FILES[0]
    try:
        found = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None
    except Exception:  # noqa: BLE001 - an unreadable file: the parent goes without it
        return {}
    return {str(key): value for key, value in found.items()} if isinstance(found, dict) else {}


def end_parent_failed(sweep: dict[str, str], reason: str) -> bool:
    """End the sweep's parent run FAILED with ``reason``, briefly retried, writing nothing else
    (what failed to be written may fail again); whether it could."""
    parent, store = sweep["parent_run_id"], Store(sweep["tracking_uri"])
    try:
        retrying(lambda: store.client.set_tag(parent, keys.ERROR, reason),
                 retry_for_s=FAILING_RETRY_S)
        retrying(lambda: store.client.set_terminated(parent, status="FAILED"),
                 retry_for_s=FAILING_RETRY_S)
    except Exception:
        return False
    return True
