#!/usr/bin/env bash
# Issue 15's candidate for samed2-nano on real-like stacks: two stages on top of the shipped
# weights (scripts/train_nano.sh's stage 3), seeded and resumable. Nothing is shipped: the
# result is RUN_DIR/stage5.safetensors, to be evaluated against the shipped weights
# (`samed2 evaluate --model RUN_DIR/stage5.safetensors --no-baselines`, every suite) and
# copied over src/napari_samed2/weights/samed2-nano.safetensors only if no suite drops by more
# than 0.01 and the demo still scores >= 0.95 (docs/models.md).
# Usage: scripts/train_nano_real_like.sh [RUN_DIR]   (default /work/runs/nano-real-like)
# Environment: PYTHON (default .venv/bin/python), THREADS (default 2), DEVICE (default cpu).
#
# Time on two CPU cores: about 1.7 h with AVX-512 (2.2 s a step in stage 4), twice that with
# AVX2 only (run 12 took 7,744 s for stage 4 on such a machine, sharing it with tests).
#
# Stage 4 (run 12 of the model card, 1600 steps): dense-tissue
# volumes 30 % of the mix, half of the volume clips run past a tracked object's end
# (--end-focus 0.5), object-score loss x2. It reached real-like tissue 0.576 (shipped 0.187)
# but cost time-lapses 0.013. Stage 5 (session 9's plan; its run was lost at step 50 with
# its machine): brain volumes in the mix, more time-lapses to hold that suite, 6-frame clips
# so an end is seen with context, the carried mask dropped on 20 % of frames so that memory
# has to find the object, end focus 0.6, object-score loss x3.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
RUN_DIR="${1:-/work/runs/nano-real-like}"
COMMON=(--batch-size 2 --objects 8 --tracked 4 --click-seed --carry-mask
        --focal-weight 1 --dice-weight 5 --threads "${THREADS:-2}" --device "${DEVICE:-cpu}")

"$PYTHON" -m napari_samed2.train.commands train --run-dir "$RUN_DIR/stage4" \
    --steps 1600 --lr 3e-4 --warmup 50 --seed 4 --frames 4 "${COMMON[@]}" \
    --init-from src/napari_samed2/weights/samed2-nano.safetensors \
    --mix tissue-volume=0.30,nuclei=0.12,cells=0.20,tubes=0.04,organs=0.04,nuclei-volume=0.10,organ-volume=0.04,timelapse=0.16 \
    --end-focus 0.5 --score-weight 2 --event-focus 0.6 \
    --export "$RUN_DIR/stage4.safetensors"

exec "$PYTHON" -m napari_samed2.train.commands train --run-dir "$RUN_DIR/stage5" \
    --steps 800 --lr 2e-4 --warmup 20 --seed 5 --frames 6 "${COMMON[@]}" \
    --init-from "$RUN_DIR/stage4.safetensors" \
    --mix tissue-volume=0.22,brain-volume=0.10,nuclei=0.10,cells=0.18,tubes=0.03,organs=0.03,nuclei-volume=0.10,organ-volume=0.04,timelapse=0.20 \
    --carry-drop 0.2 --end-focus 0.6 --score-weight 3 --event-focus 0.6 \
    --export "$RUN_DIR/stage5.safetensors"
