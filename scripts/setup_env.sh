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
"${PIP[@]}" install -q --upgrade "pip>=24" "setuptools<80" wheel  # colcon-core needs setuptools<80
# torch first (ENVIRONMENT.md recipe), so that anomalib does not pull another build.
echo "[setup] torch / torchvision"
"${PIP[@]}" install -q "$(grep '^torch==' requirements.txt)" "$(grep '^torchvision==' requirements.txt)"
echo "[setup] anomalib, ROS 2 wheels, rosbags, runtimes"
"${PIP[@]}" install -q -r requirements.txt
# ament_copyright (the ament license-header linter) is packaged by Debian, not on PyPI: unpack
# Debian's pure-Python package into the venv (needs apt; `apt-get update` needs root).
if ! "$VENV/bin/python" -c 'import ament_copyright' 2>/dev/null; then
  echo "[setup] ament_copyright from Debian's python3-ament-copyright"
  work=$(mktemp -d)
  if (cd "$work" && { apt-get download -q python3-ament-copyright 2>/dev/null \
        || { apt-get update -qq && apt-get download -q python3-ament-copyright; }; } \
        && dpkg-deb -x python3-ament-copyright_*.deb root); then
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    cp -r "$work"/root/usr/lib/python3/dist-packages/ament_copyright* "$site"/
  else
    echo "[setup] WARNING: python3-ament-copyright unavailable; test_copyright will skip" >&2
  fi
  rm -rf "$work"
fi
echo "[setup] vad4space_ros (editable)"
"${PIP[@]}" install -q --no-deps -e .
"${PIP[@]}" check
echo "[setup] done: $("$VENV/bin/python" -c 'import torch, anomalib, rclpy; print("torch", torch.__version__, "anomalib", anomalib.__version__)')"
