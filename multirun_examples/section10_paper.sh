#!/usr/bin/env bash
# The paper's Section 10 with the recipe that reproduces its numbers on real MNIST (sigmoid teacher,
# 4,000 steps, student from the teacher's initial weights): conf/experiment/section10_paper.yaml.
#   multirun_examples/section10_paper.sh [extra Hydra overrides, e.g. 'seed=0,1,2,3,4']
source "$(dirname "$0")/common.sh"
require_data section10_paper MNIST/raw
run_experiment section10_paper "$@"
