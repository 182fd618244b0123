"""`labelset` is the headless label logic: importing it loads no Qt and no napari."""

import subprocess
import sys


def test_labelset_imports_without_qt_or_napari():
    probe = (
        "import sys\n"
        "import napari_samed2.labelset as labelset\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'vispy', 'magicgui'))\n"
        "print(repr(loaded))\n"
        "print(repr(labelset.merge_objects.__module__))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    loaded, module = done.stdout.splitlines()
    assert loaded == "[]", f"importing napari_samed2.labelset loaded {loaded}"
    assert module == "'napari_samed2.labelset.merge'"
