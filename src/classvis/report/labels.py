"""Human-readable labels made from a run's tags: what a row of a table is about."""

from __future__ import annotations

import json

from classvis import runkeys as keys


def with_variant(tags: dict[str, str], kind: str) -> str:
    variant = tags.get(f"{kind}_variant")
    return tags.get(kind, "") + (f" ({variant})" if variant else "")


def extractor_label(tags: dict[str, str]) -> str:
    """The extractor and, when they differ from its defaults, its settings: ``class_vis
    (diversity=100.0)``. Runs of one extractor with other settings are other synthetic sets."""
    return with_variant(tags, "extractor")


def teacher_label(tags: dict[str, str]) -> str:
    """The teacher's architecture and, when it is not the paper's, its training recipe."""
    return with_variant(tags, "teacher")


def variants_label(tags: dict[str, str], kinds: tuple[str, ...]) -> str:
    """What the runs changed from the defaults, for ``kinds`` (of extractor, teacher, student):
    ``teacher epochs=2; student lr=0.001``; empty for the defaults."""
    return "; ".join(f"{kind} {tags[f'{kind}_variant']}" for kind in kinds
                     if tags.get(f"{kind}_variant"))


def recipe_label(tags: dict[str, str]) -> str:
    """The training recipes that differ from the paper's; empty for the paper's."""
    return variants_label(tags, ("teacher", "student"))


def setting_label(tags: dict[str, str]) -> str:
    """The extractor label, plus the training recipes where they are not the paper's."""
    recipe = recipe_label(tags)
    return extractor_label(tags) + (f"; {recipe}" if recipe else "")


BALANCE_TASK = {"none": "all images", "train": "balanced train set",
                "train_and_test": "balanced"}


def balance_label(tags: dict[str, str]) -> str:
    """Which sets of a one-vs-rest run were balanced."""
    # runs made before the tag existed balanced both sets
    return BALANCE_TASK.get(tags.get(keys.ONE_VS_REST_BALANCE, "train_and_test"), "?")


def task_label(tags: dict[str, str]) -> str:
    """The classification task: all classes, a subset, one-vs-rest, or a swapped set."""
    if tags.get(keys.SWAP):
        details = [balance_label(tags)] if tags[keys.SWAP].endswith("-vs-rest") else []
        if tags.get(keys.SWAP_TARGETS) == "teacher":
            details.append("base teacher's targets")
        return f"10-class set, {tags['swap']}" + (f" ({', '.join(details)})" if details else "")
    if tags.get(keys.CLASSES):
        return "classes " + ", ".join(json.loads(tags[keys.CLASSES]))
    if tags.get(keys.ONE_VS_REST):
        return f"{tags['one_vs_rest']} vs rest ({balance_label(tags)})"
    return "all classes"
