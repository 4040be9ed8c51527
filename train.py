"""Run the paper's pipeline: ``python train.py`` (one run) or ``python train.py -m ...`` (a sweep).

See README.md for the config groups and the override syntax.
"""

if __name__ == "__main__":  # first: it imports matplotlib on the other core while torch loads
    from classvis import collector, drawing

    collector.pause()  # no garbage collection while Hydra and torch are imported
    drawing.start()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from classvis.app import exit_without_teardown  # noqa: E402
from classvis.app import main as run_experiment  # noqa: E402


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, float]:
    return run_experiment(cfg)


if __name__ == "__main__":
    from pathlib import Path

    from classvis.commandline import refuse_unknown_choices

    refuse_unknown_choices(Path(__file__).resolve().parent / "conf")
    collector.resume()
    with exit_without_teardown():
        main()
