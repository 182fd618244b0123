#!/usr/bin/env bash
# The whole test suite, GUI tests included, on a virtual display.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/npe2 validate napari-samed2
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest -p no:cacheprovider "$@"
