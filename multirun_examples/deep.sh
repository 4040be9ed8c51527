#!/usr/bin/env bash
# Data-free distillation of a LeNet-5 teacher on real MNIST, k = 1, 10, 50, 100 per class, against
# as many real images: conf/experiment/deep.yaml. Fashion-MNIST: add 'dataset=fmnist'.
#   multirun_examples/deep.sh [extra Hydra overrides, e.g. 'seed=0,1,2']
source "$(dirname "$0")/common.sh"
require_data deep MNIST/raw
run_experiment deep "$@"
