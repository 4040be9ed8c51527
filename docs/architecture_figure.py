"""Draws docs/architecture.png: a run's stages and the modules that implement them.

    python docs/architecture_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

# (stage, modules, optional?) in the order a run goes through them
STAGES = [
    ("settings", "from_config.py\nrunsettings.py", False),
    ("data", "data.py  loaders/\ndatafiles.py", False),
    ("teacher", "models/  fit.py\nteacher_cache.py", False),
    ("extract", "extract/\npriors.py", False),
    ("swap", "swap.py", True),
    ("student", "distill.py\naugment.py", False),
    ("compress", "compress.py", True),
    ("evaluate", "evaluate.py\nprivacy.py", False),
]
EDGE_TOP = ("Hydra edge: train.py -> app.py (validates) -> record.py (the run; resume.py, "
            "lifecycle.py); sweep.py -> sweepresult.py (a sweep's parent run)",
            "#dbe9f6")
EDGE_BOTTOM = ("MLflow edge: artifacts.py, runparams.py, runrecords.py -> track/ (the only "
               "code importing MLflow; names: runkeys.py)  |  report/, export read runs back",
               "#f6e3d4")


def draw(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(13, 4.2))
    ax.set_xlim(0, len(STAGES) * 1.6)
    ax.set_ylim(0, 4.2)
    ax.axis("off")
    for row, (text, colour) in ((3.35, EDGE_TOP), (0.25, EDGE_BOTTOM)):
        ax.add_patch(FancyBboxPatch((0.1, row), len(STAGES) * 1.6 - 0.2, 0.6,
                                    boxstyle="round,pad=0.02", fc=colour, ec="0.4"))
        ax.text(len(STAGES) * 0.8, row + 0.3, text, ha="center", va="center", fontsize=9)
    for i, (stage, modules, optional) in enumerate(STAGES):
        x = 0.15 + i * 1.6
        ax.add_patch(FancyBboxPatch((x, 1.35), 1.3, 1.55, boxstyle="round,pad=0.03",
                                    fc="white" if optional else "#eef5e9", ec="0.3",
                                    linestyle="--" if optional else "-"))
        ax.text(x + 0.65, 2.6, stage, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x + 0.65, 1.9, modules, ha="center", va="center", fontsize=8, family="monospace")
        if i:
            ax.annotate("", xy=(x - 0.02, 2.1), xytext=(x - 0.28, 2.1),
                        arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.text(0.15, 1.12, "pipeline.py runs the stages (stages.py) in order on tensors in memory, "
            "on the run's device (device.py); dashed: only when configured. Numeric modules know "
            "nothing of MLflow or Hydra.", fontsize=8.5, va="center")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    draw(Path(__file__).with_name("architecture.png"))
