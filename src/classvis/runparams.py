"""The params a run logs: the config it actually used, as a person compares runs in the UI.

The full resolved config stays in the run's ``config.yaml`` (and decides resume); the params leave
out where things are stored and how the console looks (``tracking.*``, ``teacher_cache.*``,
``progress``, ``force``, ``data_root``), the keys of stages that did not run (``compress.*``
without compression, ``swap.*`` without a swap, ``trainer.teacher.*`` for a teacher given, not
trained), priors switched off (an extractor weight of 0), and unset values (``None``), so the
compare view shows what differs between runs, not dozens of constants.
"""

from __future__ import annotations

from typing import Any

OPERATIONAL = ("tracking.", "teacher_cache.", "hydra.")
OPERATIONAL_KEYS = {"progress", "force", "data_root"}
# an extractor's priors, each off at 0 (or false); blur_every only matters with blur
EXTRACTOR_PRIORS = ("diversity", "jitter", "tv", "blur", "clip", "flip", "scale", "bn")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys -> values."""
    if isinstance(tree, dict):
        items: dict[str, Any] = {}
        for key, value in tree.items():
            items.update(flatten(value, f"{prefix}{key}."))
        return items
    return {prefix[:-1]: tree}


def _off(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, (int, float)) and value == 0)


def used_params(resolved: dict[str, Any]) -> dict[str, str]:
    """The run's params: the resolved config's keys that shaped what it ran, as strings."""
    flat = flatten(resolved)
    unused: set[str] = set()
    if not flat.get("compress.enabled"):
        unused.add("compress.")
    if flat.get("swap.replace") is None:
        unused.add("swap.")
    if flat.get("teacher_from.kind", "train") != "train":
        unused.add("trainer.teacher.")
    if not flat.get("privacy.enabled", True):
        unused.add("privacy.test_sample")
    if not flat.get("trainer.student.mixup"):
        unused.update({"trainer.student.mixup_alpha", "trainer.student.mixup_images"})
    if flat.get("trainer.teacher.augment", "none") == "none":
        unused.add("trainer.teacher.crop_padding")
    for prior in EXTRACTOR_PRIORS:
        if _off(flat.get(f"extractor.{prior}")):
            unused.add(f"extractor.{prior}")
    if _off(flat.get("extractor.blur")):
        unused.add("extractor.blur_every")
    params = {}
    for key, value in flat.items():
        if (value is None or key in OPERATIONAL_KEYS or key.startswith(OPERATIONAL)
                or key in unused or any(key.startswith(prefix) for prefix in unused
                                        if prefix.endswith("."))):
            continue
        params[key] = str(value)
    return params
