#!/usr/bin/env bash
# The paper's Table 5: MNIST, Fashion-MNIST and CIFAR-10 (JPEG copy) x Trainset, Class Vis.,
# Class Vis. Deeper, Avg. Images, Output W's. One Hydra multirun (12 jobs, 3 teachers each trained
# once) into the MLflow experiment "table5", then the report prints and saves the table.
#   multirun_examples/table5.sh [extra Hydra overrides, e.g. 'seed=0,1,2']
source "$(dirname "$0")/common.sh"
require_data table5 MNIST/raw FashionMNIST/raw cifar10-jpg/train cifar10-jpg/test
run_experiment table5 "$@"
