"""MLflow runs -> the paper's tables and figures, and ours.

    python -m classvis.report --experiment table5     (or: classvis report --experiment table5)

Rows and columns come from run tags (dataset, extractor, teacher, student, seed), never from run
names or order. Several seeds give mean and standard deviation; a missing cell is listed, not
fatal. The files are written to ``--output`` and logged as artifacts of a summary run in the
same experiment, so the MLflow UI shows them next to the runs.

Modules: ``runs`` (reading runs back and telling their protocol), ``labels`` (row labels from
tags), ``cells`` (numbers to cells, Markdown, sections), ``table5``, ``sections`` (Section 8,
Section 10, deep teachers, privacy), ``figures``, ``cli`` (the command line).
"""

from classvis.report.cli import main, markdown_document, write_report
from classvis.report.figures import accuracy_vs_images_figures, f1_figures
from classvis.report.runs import RunRecord, fetch_runs
from classvis.report.sections import deep, privacy, section8, section10
from classvis.report.table5 import Table, table5

__all__ = ["RunRecord", "Table", "accuracy_vs_images_figures", "deep", "f1_figures",
           "fetch_runs", "main", "markdown_document", "privacy", "section8", "section10",
           "table5", "write_report"]
