"""The words that tell a sweep's jobs apart, shared by their run names and the sweep's table.

A job of a sweep is named by what the sweep varies (``dataset=mnist table5=class_vis_deeper
seed=0``) before its full description, so the first characters of a run name, all that the runs
table shows, differ between the jobs; the sweep's table labels its configs with the same words.
Plain strings: the Hydra side (``sweep``) decides which override keys vary.
"""

from __future__ import annotations

from collections.abc import Iterable

SIGNIFICANT = 4  # digits of a sampled float (a search's trial) in a name
# overrides that say where results go and how progress shows, not what a run is
OPERATIONAL = ("tracking.", "hydra.", "progress=", "force=")


def override_key(item: str) -> str:
    """The key of an override: ``+experiment/table5=k1`` -> ``experiment/table5``."""
    return item.partition("=")[0].lstrip("+~")


def _short_value(value: str) -> str:
    """A float with many digits (a search's sampled value) to ``SIGNIFICANT`` digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    short = f"{number:.{SIGNIFICANT}g}"
    return short if len(short) < len(value) and "." in value else value


def short_override(item: str) -> str:
    """``+experiment/table5=class_vis`` -> ``table5=class_vis``; ``architecture@student=mlp`` ->
    ``student=mlp``; ``extractor.l2=0.0523418`` -> ``extractor.l2=0.05234``."""
    key, equals, value = item.partition("=")
    key = key.lstrip("+~").rsplit("/", 1)[-1].rsplit("@", 1)[-1]
    return f"{key}{equals}{_short_value(value)}" if equals else key


def override_words(items: Iterable[str]) -> str:
    return " ".join(short_override(item) for item in items)


def what_it_runs(items: Iterable[str]) -> list[str]:
    """The overrides that change what is run (``OPERATIONAL`` ones left out)."""
    return [item for item in items if not item.lstrip("+~").startswith(OPERATIONAL)]


def varying_words(overrides: Iterable[str], varying: Iterable[str]) -> str:
    """The job's overrides of the keys its sweep varies, in the job's order, as words."""
    keys = set(varying)
    return override_words(item for item in overrides if override_key(item) in keys)
