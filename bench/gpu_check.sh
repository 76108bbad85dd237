#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, every GPU figure of this project in one JSON,
# in under 8 minutes (bench/gpu_check.py says what it runs; docs/gpus-and-slurm.md how to read
# it).
#
#   bash bench/gpu_check.sh [--out gpu_check.json] [--budget 470]
#   bash bench/gpu_check.sh --tiny --out /tmp/gpu_check.json   # a CPU rehearsal in seconds
#
# Python: $PYTHON, else this checkout's .venv, else python3 with src/ on the path (a GPU
# machine with its own torch). Every part has its own time limit and the JSON is rewritten
# after each, so what finished is kept whatever happens to the rest. Exit status 0 when no
# part failed or timed out.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
elif [ -x .venv/bin/python ]; then
  py=.venv/bin/python
else
  py=python3
fi
if ! "$py" -c "import fragility" 2>/dev/null; then
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
exec "$py" bench/gpu_check.py "$@"
