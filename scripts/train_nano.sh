#!/usr/bin/env bash
# Reproduce the embedded samed2-nano model: seeded training on synthetic clips, then export.
# Usage: scripts/train_nano.sh [RUN_DIR]   (default /work/runs/nano; resumes if interrupted)
# Environment: PYTHON (default .venv/bin/python), THREADS (default 2).
#
# Stage 1 (3000 steps from random weights, the fluorescence-heavy mix) is the model shipped in
# session 2. Stage 2 fine-tunes it (2500 steps, lr 3e-4) on a mix with more membrane cells,
# tubes and organs (shipped in session 3). Stage 3 fine-tunes that (3000 steps) with more
# cells and time-lapses, 60% of the time-lapse clips around a division or an entering cell
# (--event-focus). Every stage resumes where it stopped.
# Loss weights focal 1 / dice 5 instead of SAM2's 20 / 1: from scratch, focal x20 drives every
# mask to empty within ~20 steps. --click-seed draws the clicks into the mask prompt as well:
# without it the net never learned where the click was. --carry-mask gives each tracked frame
# the previous frame's mask as mask prompt (docs/models.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
RUN_DIR="${1:-/work/runs/nano}"
COMMON=(--batch-size 2 --frames 4 --objects 8 --tracked 4 --click-seed --carry-mask
        --focal-weight 1 --dice-weight 5 --threads "${THREADS:-2}" --device cpu)

"$PYTHON" -m napari_samed2.train.commands train --run-dir "$RUN_DIR/stage1" \
    --steps 3000 --lr 1e-3 --warmup 100 --seed 0 "${COMMON[@]}" \
    --export "$RUN_DIR/stage1.safetensors"

"$PYTHON" -m napari_samed2.train.commands train --run-dir "$RUN_DIR/stage2" \
    --steps 2500 --lr 3e-4 --warmup 50 --seed 1 "${COMMON[@]}" \
    --init-from "$RUN_DIR/stage1.safetensors" \
    --mix nuclei=0.2,cells=0.25,tubes=0.08,organs=0.07,nuclei-volume=0.12,organ-volume=0.05,timelapse=0.23 \
    --export "$RUN_DIR/stage2.safetensors"

exec "$PYTHON" -m napari_samed2.train.commands train --run-dir "$RUN_DIR/stage3" \
    --steps 3000 --lr 3e-4 --warmup 50 --seed 3 "${COMMON[@]}" \
    --init-from "$RUN_DIR/stage2.safetensors" \
    --mix nuclei=0.15,cells=0.3,tubes=0.06,organs=0.05,nuclei-volume=0.1,organ-volume=0.04,timelapse=0.3 \
    --event-focus 0.6 \
    --export src/napari_samed2/weights/samed2-nano.safetensors
