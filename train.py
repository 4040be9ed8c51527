"""Run the paper's pipeline: ``python train.py`` (one run) or ``python train.py -m ...`` (a sweep).

See README.md for the config groups and the override syntax.
"""

from classvis import runtime

runtime.start()

import sys  # noqa: E402  (after runtime.start: the imports collect less often)
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from classvis.app import main as run_experiment  # noqa: E402
from classvis.commandline import refuse_unknown_choices  # noqa: E402

runtime.imports_done()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, float]:
    return run_experiment(cfg)


if __name__ == "__main__":
    try:
        refuse_unknown_choices(Path(__file__).resolve().parent / "conf")
        main()
    except KeyboardInterrupt:  # Ctrl-C outside a run (start-up, between jobs): one line, 130
        print("classvis: interrupted (Ctrl-C, SIGINT)", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
