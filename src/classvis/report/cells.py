"""Numbers to table cells, and a report section as Markdown and CSV."""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from classvis.report.runs import RunRecord


def metric_values(runs: list[RunRecord], key: str) -> list[float]:
    """The metric's value in every run that has it (fractions for accuracies)."""
    return [r.metrics[key] for r in runs if key in r.metrics]


def mean_sd_text(values: list[float]) -> str:
    """Fractions as a percentage cell: ``92.27``, ``92.22 ± 0.17`` over seeds, ``-`` if none."""
    if not values:
        return "-"
    text = f"{100 * statistics.fmean(values):.2f}"
    return text + (f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else "")


def mean_text(runs: list[RunRecord], key: str, digits: int = 0) -> str:
    """The mean of a metric over runs, with ``digits`` decimals; ``-`` if no run has it."""
    values = metric_values(runs, key)
    return f"{statistics.fmean(values):.{digits}f}" if values else "-"


def is_numeric_cell(cell: str) -> bool:
    """A numeric cell (``92.27``, ``92.27 ± 0.17``, ``2386x``, ``1,000``, ``-``): right-aligned."""
    text = cell.replace("±", " ").replace(",", "").rstrip("x").split()
    try:
        return all(part == "-" or float(part) is not None for part in text)
    except ValueError:
        return False


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; columns whose cells are all numbers are right-aligned."""
    numeric = [bool(rows) and all(is_numeric_cell(row[i]) for row in rows)
               for i in range(len(header))]
    rule = "|" + "".join("---:|" if is_numeric else "---|" for is_numeric in numeric)
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Section:
    slug: str      # file name: <slug>.csv
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        parts = [f"## {self.title}", "", markdown_table(self.header, self.rows)]
        if self.notes:
            parts += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(parts)

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.header)
            writer.writerows(self.rows)
