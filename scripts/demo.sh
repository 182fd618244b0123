#!/usr/bin/env bash
# The main job: the demo on the embedded model (a napari window when there is a display,
# a headless run writing labels, an overlay PNG and Dice otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/samed2 demo "$@"
