"""A sweep's own table: every config of the sweep (its overrides, seeds aside) with the main
metrics of its runs, mean ± standard deviation over seeds. The sweep's parent run holds it, and
``classvis report --sweep`` prints it beside the experiment's tables."""

from __future__ import annotations

from classvis import runkeys as keys
from classvis.report.cells import Section, mean_sd_text, mean_text, metric_values
from classvis.report.runs import RunRecord, latest_runs_by

# the main metrics, as (column, metric key, accuracy?); a column shows only if a run has it
MAIN_METRICS = (
    ("Teacher", keys.accuracy("teacher"), True),
    ("Student", keys.accuracy("student"), True),
    ("Same images, real", keys.accuracy("baseline_student"), True),
    ("Compressed", keys.accuracy("compressed"), True),
    ("Images", keys.SYNTHETIC_IMAGES, False),
    ("Privacy distance ratio", keys.DISTANCE_RATIO, False),
    ("Seconds per run", keys.TOTAL_TIME, False),
)
SEED_OVERRIDE = "seed="
DIGITS = {keys.DISTANCE_RATIO: 2, keys.TOTAL_TIME: 1}


def overrides_of(run: RunRecord) -> frozenset[str]:
    """The job's overrides without its seed: what the runs of one config share. A run made outside
    a sweep (no overrides recorded) is described by its tags."""
    overrides = run.tags.get(keys.HYDRA_OVERRIDES)
    if overrides is None:
        return frozenset(f"{key}={run.tags[key]}" for key in (
            keys.DATASET, keys.TEACHER, keys.EXTRACTOR, keys.PER_CLASS, keys.STUDENT)
            if key in run.tags)
    return frozenset(item for item in overrides.split() if not item.startswith(SEED_OVERRIDE))


def sweep_table(runs: list[RunRecord]) -> Section:
    """One row per config (the latest run of each seed), in the order the configs first ran,
    labelled by the overrides that tell it from the sweep's other configs."""
    configs = {overrides_of(r) for r in runs}
    shared = frozenset.intersection(*configs) if configs else frozenset()

    def config_label(run: RunRecord) -> str:
        return " ".join(sorted(overrides_of(run) - shared)) or "(every run)"

    groups = latest_runs_by(runs, lambda r: (config_label(r),))
    first_start = {label: min(r.start_time for r in group) for (label,), group in groups.items()}
    columns = [(title, key, accuracy) for title, key, accuracy in MAIN_METRICS
               if any(key in r.metrics for r in runs)]
    rows = []
    for label in sorted(first_start, key=lambda item: (first_start[item], item)):
        group = groups[(label,)]
        row = [label, str(len(group))]
        for _, key, accuracy in columns:
            row.append(mean_sd_text(metric_values(group, key)) if accuracy
                       else mean_text(group, key, digits=DIGITS.get(key, 0)))
        rows.append(row)
    header = ["Config (overrides)", "Seeds"] + [
        f"{title} (%)" if accuracy else title for title, _, accuracy in columns]
    notes = [f"Every run: {' '.join(sorted(shared))}"] if shared else []
    return Section("sweep", "Sweep: test accuracy (%) per config, mean ± sd over seeds", header,
                   rows, notes)
