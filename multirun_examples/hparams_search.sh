#!/usr/bin/env bash
# An Optuna search (conf/hparams_search/student_accuracy.yaml) on real MNIST for the paper's
# "Class Vis. Deeper" student (30 ReLU hidden units, conf/experiment/table5/class_vis_deeper.yaml): the
# extractor's L2 weight and step count and the student's learning rate, 20 trials, maximising
# student/accuracy. Every trial is a run in the MLflow experiment "hparams_search"; the best
# parameters and value are printed at the end and saved in the sweep folder
# (multirun/hparams_search/<time>/optimization_results.yaml).
#   multirun_examples/hparams_search.sh [extra overrides, e.g. hydra.sweeper.n_trials=40 dataset=fmnist]
source "$(dirname "$0")/common.sh"
require_data hparams_search MNIST/raw
"$PYTHON" train.py -m hparams_search=student_accuracy dataset=mnist +experiment/table5=class_vis_deeper \
  tracking.experiment=hparams_search 'hydra.sweep.dir=multirun/hparams_search/${now:%Y-%m-%d_%H-%M-%S}' "$@"
