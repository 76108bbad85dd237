#!/usr/bin/env bash
# One-time (and idempotent) setup: Fashion-MNIST from Debian where apt is available, and a
# virtualenv in .venv with the fragility package and its dependencies.
set -euo pipefail
cd "$(dirname "$0")"

FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -e "$FMNIST/train-images-idx3-ubyte.gz" ] && command -v apt-get >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if $SUDO true 2>/dev/null; then
    echo "setup: installing Debian's dataset-fashion-mnist" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: no root: install dataset-fashion-mnist yourself, or set download: true" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first and on its own: it is the large download, and a failure here is clearer.
.venv/bin/python -m pip install -q "torch>=2.6" "torchvision>=0.21" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[dev,slurm]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import fragility, torch, torchvision, snakemake" \
  || { echo "setup: the virtualenv is incomplete (see pip's messages above)" >&2; exit 1; }
echo "setup: ready (.venv: torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))" >&2
