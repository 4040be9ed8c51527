"""How a classvis process sets up the interpreter: ``train.py`` and the ``classvis`` command call
``start`` first and ``imports_done`` after their imports; no other code knows of this module.

The garbage collector. Python 3.11 runs a collection of its youngest objects every 700 net
allocations and a full one, which walks every live object, every tenth of the tenth: importing
Hydra, torch and MLflow builds about 440,000 long-lived objects, and each full pass walks them all
again, in the imports and in every run of a sweep after them. Collecting every 50,000 net
allocations instead (full passes as rare in proportion) and freezing what the imports made
(``gc.freeze``: never walked again) saved the share of a table5 sweep and of a search that
docs/results.md gives (the project's rule: a trick stays only for >= 10% of a real sweep).
Objects are still freed by their reference counts the moment they are unused; only garbage in
reference cycles waits longer.
"""

from __future__ import annotations

import gc

YOUNGEST = 50_000  # net allocations between collections of the youngest generation (Python: 700)


def start() -> None:
    """First thing in a process: collect garbage less often."""
    gc.set_threshold(YOUNGEST, 20, 10)


def imports_done() -> None:
    """After the process's heavy imports: what they made lives as long as the process, so no
    collection need walk it again."""
    gc.freeze()
