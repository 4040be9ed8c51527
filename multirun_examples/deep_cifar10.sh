#!/usr/bin/env bash
# Data-free distillation of the ConvNet (width 128, BatchNorm) on CIFAR-10 (the JPEG image folder),
# k = 1, 10, 50 per class against as many real images: conf/experiment/deep_cifar10.yaml. Sized
# for a GPU; on a CPU add 'teacher.width=32' 'student.width=32'.
#   multirun_examples/deep_cifar10.sh [extra Hydra overrides, e.g. 'seed=0,1,2']
source "$(dirname "$0")/common.sh"
require_data deep_cifar10 cifar10-jpg/train cifar10-jpg/test
run_experiment deep_cifar10 "$@"
