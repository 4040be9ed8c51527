#!/usr/bin/env bash
# The paper's Section 8 on real MNIST: see multirun_examples/README.md and conf/experiment/section8.yaml.
#   multirun_examples/section8.sh [extra Hydra overrides, e.g. 'seed=0,1,2']
source "$(dirname "$0")/common.sh"
require_data section8 MNIST/raw
run_experiment section8 "$@"
