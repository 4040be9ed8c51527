#!/usr/bin/env bash
# The paper's Table 5: MNIST, Fashion-MNIST and CIFAR-10 (JPEG copy) x Trainset, Class Vis.,
# Class Vis. Deeper, Avg. Images, Output W's. One Hydra multirun (12 jobs, 3 teachers each trained
# once) into the MLflow experiment "table5", then the report prints and saves the table.
#   multirun_examples/table5.sh [extra Hydra overrides, e.g. 'seed=0,1,2']
set -euo pipefail
cd "$(dirname "$0")/.."
export CLASSVIS_DATA="${CLASSVIS_DATA:-../shared/data}"
PYTHON="${PYTHON:-.venv/bin/python}"

missing=()
for folder in MNIST/raw FashionMNIST/raw cifar10-jpg/train cifar10-jpg/test; do
  [ -d "$CLASSVIS_DATA/$folder" ] || missing+=("$CLASSVIS_DATA/$folder")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "table5: the real datasets are missing: ${missing[*]}" >&2
  echo "table5: set CLASSVIS_DATA to a folder holding MNIST/raw, FashionMNIST/raw and cifar10-jpg/{train,test}" >&2
  exit 2
fi

"$PYTHON" train.py +experiment=table5 "$@"
"$PYTHON" -m classvis.report --experiment table5
