"""The synthetic package stands alone: numpy and scipy, no torch, sam2 or Qt.

napari's sample data and the demo build their stacks with it, so importing it must not pay
for (or require) the model stack. A fresh interpreter shows what one import really loads.
"""

import json
import subprocess
import sys

HEAVY = ("torch", "sam2", "hydra", "napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6")


def test_importing_synthetic_loads_no_torch_sam2_or_qt():
    probe = (
        "import json, sys\n"
        "from napari_samed2.synthetic import GENERATORS, nuclei_volume\n"
        "nuclei_volume(shape=(4, 32, 32), seed=0)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing napari_samed2.synthetic loaded {loaded}"
