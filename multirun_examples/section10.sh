#!/usr/bin/env bash
# The paper's Section 10 on real MNIST: see multirun_examples/README.md and conf/experiment/section10.yaml.
#   multirun_examples/section10.sh [extra Hydra overrides, e.g. 'seed=0,1,2']
source "$(dirname "$0")/common.sh"
require_data section10 MNIST/raw
run_experiment section10 "$@"
