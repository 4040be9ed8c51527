"""A sweep's own result: every config of the sweep (its overrides, seeds aside) with the main
metrics of its runs, mean ± standard deviation over seeds, best first. The sweep's parent run
holds the table and, as metrics, each config's means and the best config's values (so the runs
table, sorted by ``student/accuracy`` with the sweeps folded, ranks sweeps by their result);
``classvis report --sweep`` prints the table beside the experiment's tables."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from classvis import runkeys as keys
from classvis.naming import override_words, what_it_runs
from classvis.report.cells import Section, mean_sd_text, mean_text, metric_values
from classvis.report.runs import RunRecord, latest_runs_by

# the main metrics, as (column, metric key, accuracy?); a column shows only if a run has it
MAIN_METRICS = (
    ("Teacher", keys.accuracy("teacher"), True),
    ("Student", keys.accuracy("student"), True),
    ("Same images, real", keys.accuracy("baseline_student"), True),
    ("Compressed", keys.accuracy("compressed"), True),
    ("Student-teacher agreement, held-out views", keys.VIEW_AGREEMENT, True),
    ("Images", keys.SYNTHETIC_IMAGES, False),
    ("Privacy distance ratio", keys.DISTANCE_RATIO, False),
    ("Seconds per run", keys.TOTAL_TIME, False),
)
# what ranks a sweep's configs: the student's test accuracy, else (no test set) its agreement
# with the teacher on held-out views of the synthetic images
HEADLINES = (keys.accuracy("student"), keys.VIEW_AGREEMENT)
# the metrics a parent run carries for each config and for the best one
PARENT_METRICS = tuple(key for _, key, accuracy in MAIN_METRICS if accuracy)
SEED_OVERRIDE = "seed="
DIGITS = {keys.DISTANCE_RATIO: 2, keys.TOTAL_TIME: 1}
BEST = "best"


def overrides_of(run: RunRecord) -> tuple[str, ...]:
    """The job's overrides without its seed, in the job's order: what the runs of one config
    share. A run made outside a sweep (no overrides recorded) is described by its tags."""
    overrides = run.tags.get(keys.HYDRA_OVERRIDES)
    if overrides is None:
        return tuple(f"{key}={run.tags[key]}" for key in (
            keys.DATASET, keys.TEACHER, keys.EXTRACTOR, keys.PER_CLASS, keys.STUDENT)
            if key in run.tags)
    return tuple(dict.fromkeys(item for item in overrides.split()
                               if not item.startswith(SEED_OVERRIDE)))


@dataclass(frozen=True)
class ConfigResult:
    """One config of a sweep: its label (the words of the overrides that tell it from the
    sweep's other configs, as its runs' names start), its latest run per seed."""

    label: str
    runs: list[RunRecord]

    def values(self, key: str) -> list[float]:
        return metric_values(self.runs, key)

    def mean(self, key: str) -> float | None:
        values = [v for v in self.values(key) if math.isfinite(v)]
        return statistics.fmean(values) if values else None

    def sd(self, key: str) -> float | None:
        values = [v for v in self.values(key) if math.isfinite(v)]
        return statistics.stdev(values) if len(values) > 1 else None


def headline_of(runs: list[RunRecord]) -> str | None:
    """The metric that ranks the configs: the first of ``HEADLINES`` a run has."""
    return next((key for key in HEADLINES if any(key in r.metrics for r in runs)), None)


def config_results(runs: list[RunRecord]) -> tuple[list[ConfigResult], list[str]]:
    """The sweep's configs, best first (by the mean of the headline metric; configs without it
    last, in the order they first ran), and the overrides every run shares."""
    configs = {frozenset(overrides_of(r)) for r in runs}
    shared = frozenset.intersection(*configs) if configs else frozenset()
    order = list(dict.fromkeys(item for r in runs for item in overrides_of(r)))

    def config_label(run: RunRecord) -> str:
        return override_words(item for item in overrides_of(run)
                              if item not in shared) or "(every run)"

    groups = latest_runs_by(runs, lambda r: (config_label(r),))
    first_start = {label: min(r.start_time for r in group) for (label,), group in groups.items()}
    results = [ConfigResult(label, groups[(label,)])
               for label in sorted(first_start, key=lambda item: (first_start[item], item))]
    headline = headline_of(runs)
    if headline is not None:
        ranked = [(result.mean(headline), index) for index, result in enumerate(results)]
        results = [results[index] for _, index in sorted(
            ranked, key=lambda item: (item[0] is None, -(item[0] or 0.0), item[1]))]
    return results, [item for item in order if item in shared]


def best_config(results: list[ConfigResult], headline: str | None) -> ConfigResult | None:
    """The first config when the headline ranks it (``config_results`` sorts best first)."""
    if headline is None or not results or results[0].mean(headline) is None:
        return None
    return results[0]


def best_run(config: ConfigResult, headline: str) -> RunRecord:
    """The config's run (one per seed) with the best headline value."""
    return max(config.runs, key=lambda r: r.metrics.get(headline, -math.inf))


def sweep_table(runs: list[RunRecord],
                ranked: tuple[list[ConfigResult], list[str]] | None = None) -> Section:
    """One row per config (the latest run of each seed), best first, labelled as its runs'
    names start; the best row is marked. ``ranked``: ``config_results(runs)``, when the caller
    has it already."""
    results, shared = ranked if ranked is not None else config_results(runs)
    best = best_config(results, headline_of(runs))
    columns = [(title, key, accuracy) for title, key, accuracy in MAIN_METRICS
               if any(key in r.metrics for r in runs)]
    rows = []
    for result in results:
        label = f"**{result.label}** ({BEST})" if result is best else result.label
        row = [label, str(len(result.runs))]
        for _, key, accuracy in columns:
            row.append(mean_sd_text(result.values(key)) if accuracy
                       else mean_text(result.runs, key, digits=DIGITS.get(key, 0)))
        rows.append(row)
    header = ["Config", "Seeds"] + [
        f"{title} (%)" if accuracy else title for title, _, accuracy in columns]
    fixed = what_it_runs(shared)
    notes = [f"Every run: {override_words(fixed)}"] if fixed else []
    return Section("sweep", "Sweep: test accuracy (%) per config, mean ± sd over seeds, best "
                   "first", header, rows, notes)


def parent_metrics(results: list[ConfigResult], headline: str | None) -> dict[str, float]:
    """What a sweep's parent run carries as metrics: each config's mean (and sd over seeds) of
    the main accuracies as ``config/<label>/<metric>`` (``_sd``), and the best config's as
    ``best/<metric>`` and as ``<metric>`` itself, so a folded sweep shows its result in the
    runs table's ``student/accuracy`` column."""
    metrics: dict[str, float] = {}
    for result in results:
        name = keys.metric_key(result.label)[:120]
        for key in PARENT_METRICS:
            mean, sd = result.mean(key), result.sd(key)
            if mean is not None:
                metrics[f"config/{name}/{key}"] = mean
            if sd is not None:
                metrics[f"config/{name}/{key}_sd"] = sd
    best = best_config(results, headline)
    if best is not None:
        for key in PARENT_METRICS:
            mean, sd = best.mean(key), best.sd(key)
            if mean is not None:
                metrics[key] = metrics[f"{BEST}/{key}"] = mean
            if sd is not None:
                metrics[f"{BEST}/{key}_sd"] = sd
    return metrics
