"""train.py's command line, checked before Hydra composes it: an option of a config group that
does not exist (``dataset=nonexistent``, a typo in a sweep's list) is one line naming the group
and its options, exit 2, instead of Hydra's page of text and exit 1. Hydra's own groups
(``hydra/launcher=...``) and the search's are left to Hydra."""

from __future__ import annotations

import sys
from pathlib import Path

from classvis.validation import ConfigError


def group_options(conf_dir: Path, group: str) -> list[str]:
    """The options of config group ``group`` (its YAML files, nested ones as ``sub/name``)."""
    folder = conf_dir / group
    return sorted(str(path.relative_to(folder).with_suffix("")).replace("\\", "/")
                  for path in folder.rglob("*.yaml"))


def _choices(override) -> list[str] | None:
    """The option names an override of a config group asks for; None when it names them by a
    pattern (``glob(*)``) or deletes the group (``~group``)."""
    if override.is_delete():
        return None
    if override.is_sweep_override():
        from hydra.core.override_parser.types import ChoiceSweep

        value = override.value()  # a glob or range is Hydra's to expand
        return [str(item) for item in value.list] if isinstance(value, ChoiceSweep) else None
    value = override.value()
    return None if value is None else [str(value)]


def check_group_choices(arguments: list[str], conf_dir: Path) -> None:
    """``ConfigError`` naming the first override that asks for an option its group lacks."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    candidates = [argument for argument in arguments
                  if "=" in argument and not argument.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except Exception:
        return  # a syntax error: Hydra says where
    chosen = {(override.key_or_group, override.package): _choices(override) or []
              for override in overrides}
    if "module" in chosen.get(("teacher_from", None), []) and chosen.get(
            ("experiment", None)) and ("architecture", "teacher") not in chosen:
        raise ConfigError("architecture@teacher", "module beside teacher_from=module and a "
                          "preset (the preset chooses its own teacher; the command line wins)",
                          None)
    for override in overrides:
        group = override.key_or_group
        if group.startswith("hydra") or not (conf_dir / group).is_dir():
            continue  # a value (trainer.student.lr=...) or one of Hydra's groups
        options = group_options(conf_dir, group)
        for choice in _choices(override) or []:
            if choice not in options:
                shown = [option for option in options if "/" not in option] or options
                key = group + (f"@{override.package}" if override.package else "")
                raise ConfigError(key, "one of " + ", ".join(shown), choice)


def refuse_unknown_choices(conf_dir: Path, arguments: list[str] | None = None) -> None:
    """Exit 2 with one line when the command line asks for a config-group option that does not
    exist (train.py calls this before Hydra)."""
    try:
        check_group_choices(sys.argv[1:] if arguments is None else arguments, conf_dir)
    except ConfigError as error:
        print(f"classvis: error: invalid config: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
