"""The model picker loads in the chosen precision and its model line says which runs, and why
for "auto"."""

from __future__ import annotations

import pytest
import torch

from napari_samed2.model import precision as auto
from napari_samed2.ui.model_picker import PRECISIONS, ModelPicker

pytestmark = pytest.mark.gui

LOAD_TIMEOUT_MS = 60_000


def _load(qtbot, picker: ModelPicker, precision: str):
    picker.model_combo.setCurrentIndex(picker.model_combo.findData("samed2-nano"))
    picker.device_combo.setCurrentText("cpu")
    picker.precision_combo.setCurrentText(precision)
    with qtbot.waitSignal(picker.model_loaded, timeout=LOAD_TIMEOUT_MS) as blocker:
        picker.load_selected()
    return blocker.args[0]


def test_the_model_line_says_the_precision_and_why_auto_chose_it(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAMED2_CACHE", str(tmp_path))
    monkeypatch.setattr(auto, "_time_frames", lambda net, image, device: (120.0, 300.0))
    picker = ModelPicker()
    qtbot.addWidget(picker)
    assert [picker.precision_combo.itemText(i) for i in range(4)] == list(PRECISIONS)

    loaded = _load(qtbot, picker, "auto")
    assert loaded.precision == "fp32" and loaded.calibration.speedup == pytest.approx(0.4)
    assert "cpu fp32 (auto: bf16 0.4x as fast)" in picker.status.text()

    loaded = _load(qtbot, picker, "bf16")
    assert loaded.dtype == torch.bfloat16 and loaded.calibration is None
    assert "· cpu bf16 ·" in picker.status.text()
