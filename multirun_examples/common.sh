# Sourced by the scripts here: the data root, the Python to use, a check that an experiment's
# real datasets are present (a clear message and exit 2 if not), and the sweep + report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[1]}")/.."
export CLASSVIS_DATA="${CLASSVIS_DATA:-../shared/data}"
PYTHON="${PYTHON:-.venv/bin/python}"

# require_data NAME FOLDER... : every FOLDER must exist under $CLASSVIS_DATA
require_data() {
  local name="$1" missing=() folder
  shift
  for folder in "$@"; do
    [ -d "$CLASSVIS_DATA/$folder" ] || missing+=("$CLASSVIS_DATA/$folder")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "$name: the real datasets are missing: ${missing[*]}" >&2
    echo "$name: set CLASSVIS_DATA to a folder holding $* (torchvision's raw layout / image folders)" >&2
    exit 2
  fi
}

# run_experiment NAME [OVERRIDES...] : the preset conf/experiment/NAME.yaml, then its report
run_experiment() {
  local name="$1"
  shift
  "$PYTHON" train.py "+experiment=$name" "$@"
  "$PYTHON" -m classvis.report --experiment "$name"
}
