#!/usr/bin/env bash
# The paper's Section 8 on real MNIST: see multirun_examples/README.md and conf/experiment/section8.yaml.
#   multirun_examples/section8.sh [extra Hydra overrides, e.g. 'seed=0,1,2']
set -euo pipefail
cd "$(dirname "$0")/.."
export CLASSVIS_DATA="${CLASSVIS_DATA:-../shared/data}"
PYTHON="${PYTHON:-.venv/bin/python}"

if [ ! -d "$CLASSVIS_DATA/MNIST/raw" ]; then
  echo "section8: the real MNIST is missing: $CLASSVIS_DATA/MNIST/raw" >&2
  echo "section8: set CLASSVIS_DATA to a folder holding MNIST/raw (torchvision's layout)" >&2
  exit 2
fi

"$PYTHON" train.py +experiment=section8 "$@"
"$PYTHON" -m classvis.report --experiment section8
