#!/usr/bin/env bash
# Create (or update) the project virtual environment in .venv with every pinned dependency
# and the package itself in editable mode. Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VAD4SPACE_VENV:-.venv}
PY=${PYTHON:-python3.11}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24" setuptools wheel
# torch first (ENVIRONMENT.md recipe), so that anomalib does not pull another build.
echo "[setup] torch / torchvision"
"${PIP[@]}" install -q "$(grep '^torch==' requirements.txt)" "$(grep '^torchvision==' requirements.txt)"
echo "[setup] anomalib, ROS 2 wheels, rosbags, runtimes"
"${PIP[@]}" install -q -r requirements.txt
echo "[setup] vad4space_ros (editable)"
"${PIP[@]}" install -q --no-deps -e .
"${PIP[@]}" check
echo "[setup] done: $("$VENV/bin/python" -c 'import torch, anomalib, rclpy; print("torch", torch.__version__, "anomalib", anomalib.__version__)')"
