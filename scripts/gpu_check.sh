#!/usr/bin/env bash
# The prepared GPU check (README: Devices): CUDA vs CPU results and throughput, one PASS / FAIL /
# SKIP line per part, under 8 minutes on one GPU, nothing downloaded. Without CUDA it runs the CPU
# parts only. Never part of CI. Usage: bash scripts/gpu_check.sh [--gaussians N] [--size PX]
set -euo pipefail
cd "$(dirname "$0")/.."
export ANNY_CACHE_DIR="${ANNY_CACHE_DIR:-$PWD/.cache/anny}" WARP_CACHE_PATH="${WARP_CACHE_PATH:-$PWD/.cache/warp}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$PWD/.cache/matplotlib}" HF_HUB_OFFLINE=1
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec timeout 480 "$PY" scripts/gpu_check.py "$@"
