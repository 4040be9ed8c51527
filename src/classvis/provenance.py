"""Which code made a run: the project's git commit, for every run and every sweep's parent."""

from __future__ import annotations

import subprocess
from pathlib import Path

from classvis import runkeys as keys

PROJECT_DIR = Path(__file__).resolve().parents[2]


def git_commit() -> tuple[str, bool] | None:
    """The project's commit and whether its tree has uncommitted changes, when it is a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_DIR, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit, bool(dirty)


def commit_tags() -> dict[str, str]:
    """``git_commit`` (also as MLflow's own source commit, which the UI shows) and ``git_dirty``;
    none outside a checkout."""
    commit = git_commit()
    if commit is None:
        return {}
    return {keys.GIT_COMMIT: commit[0], keys.SOURCE_GIT_COMMIT: commit[0],
            keys.GIT_DIRTY: str(commit[1]).lower()}
