#!/usr/bin/env bash
# The GPU check, as `make gpu-check` runs it (kept under its old name): from the checkout's venv.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/gpu_check.py "$@"
