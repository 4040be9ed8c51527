"""What a sweep's parent run records when the sweep ends: how many jobs finished, failed or were
skipped as already FINISHED, every job's outcome (``jobs.csv``), the sweep's table (each config's
main metrics, mean ± sd over seeds) as its note and ``summary.md``/``summary.csv``, a search's
study files; then it ends FINISHED, or FAILED when a job failed or the record could not be
written."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

from classvis import runkeys as keys
from classvis.report.runs import RunRecord
from classvis.report.sweep import sweep_table
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
    runs = [RunRecord.of(run)
            for run in store.runs([r["run_id"] for r in records if r.get("run_id")])]
    table = sweep_table(runs)
    lines = [f"{len(records)} jobs: {counts['FINISHED']} finished, {counts['FAILED']} failed, "
             f"{counts['SKIPPED']} skipped as already FINISHED (their earlier runs are in the "
             f"table)", "", table.markdown()]
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
        if counts["FAILED"]:
            tags[keys.ERROR] = f"{counts['FAILED']} of {len(records)} jobs failed"
        store.end_run(parent, "FAILED" if counts["FAILED"] else "FINISHED", metrics, tags,
                      folder, "sweep")


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
