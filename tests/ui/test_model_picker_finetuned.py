"""The model picker offers the user's fine-tuned models (the list `finetune` keeps)."""

from __future__ import annotations

import pytest

from napari_samed2.model.user_models import UserModel, add_user_model
from napari_samed2.ui.model_picker import BROWSE, ModelPicker

pytestmark = pytest.mark.gui


def _items(picker: ModelPicker) -> list[tuple[str, str | None]]:
    combo = picker.model_combo
    return [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]


def test_fine_tuned_models_are_listed_and_new_ones_appear_on_refresh(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAMED2_CACHE", str(tmp_path / "cache"))
    first = tmp_path / "nuclei.safetensors"
    first.write_bytes(b"weights")
    add_user_model(UserModel("nuclei", str(first), "samed2-nano", heldout_dice=0.8))
    add_user_model(UserModel("gone", str(tmp_path / "gone.safetensors"), "samed2-nano"))
    picker = ModelPicker()
    qtbot.addWidget(picker)
    items = _items(picker)
    assert items[-2] == ("nuclei (fine-tuned)", str(first.resolve()))
    assert items[-1] == (BROWSE, None) and not any("gone" in text for text, _ in items)
    second = tmp_path / "cells.safetensors"
    second.write_bytes(b"weights")
    add_user_model(UserModel("cells", str(second), "sam2.1-tiny"))
    picker.refresh_finetuned()
    picker.refresh_finetuned()  # listed once
    texts = [text for text, _ in _items(picker)]
    assert texts[-3:] == ["nuclei (fine-tuned)", "cells (fine-tuned)", BROWSE]
    picker.model_combo.setCurrentIndex(len(texts) - 2)
    assert picker.selected_source() == str(second.resolve())
