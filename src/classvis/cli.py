"""``classvis <command>``: the project's commands besides ``train.py``.

    classvis export RUN_ID -o FILE   a run's synthetic set as one portable file
    classvis report [options]        rebuild the paper's tables from an MLflow experiment
"""

from __future__ import annotations

import importlib
import sys

from classvis import runtime

COMMANDS = {
    "export": ("classvis.export", "write a run's synthetic set to one portable file"),
    "report": ("classvis.report", "rebuild the paper's tables and figures from MLflow"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = "\n".join(f"  {name:<8}{about}" for name, (_, about) in COMMANDS.items())
        stream = sys.stdout if not argv or argv[0] in ("-h", "--help") else sys.stderr
        if argv and argv[0] not in ("-h", "--help"):
            print(f"classvis: error: unknown command {argv[0]!r}", file=stream)
        print(f"usage: classvis <command> [options]\n\ncommands:\n{lines}", file=stream)
        return 0 if stream is sys.stdout else 2
    runtime.start()
    module = importlib.import_module(COMMANDS[argv[0]][0])
    runtime.imports_done()
    return module.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
