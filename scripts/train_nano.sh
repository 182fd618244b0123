#!/usr/bin/env bash
# Reproduce the embedded samed2-nano model: seeded training on synthetic clips, then export.
# Usage: scripts/train_nano.sh [RUN_DIR]   (default /work/runs/nano; resumes if interrupted)
# Environment: PYTHON (default .venv/bin/python), THREADS (default 1), STEPS (default 1500).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
RUN_DIR="${1:-/work/runs/nano}"
exec "$PYTHON" -m napari_samed2.train.commands train \
    --run-dir "$RUN_DIR" \
    --steps "${STEPS:-1500}" --batch-size 2 --frames 4 --lr 3e-4 --warmup 100 --objects 8 --tracked 2 --seed 0 \
    --threads "${THREADS:-1}" --device cpu \
    --export src/napari_samed2/weights/samed2-nano.safetensors
