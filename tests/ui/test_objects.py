"""The object list: ids, names, selection and colours."""

from __future__ import annotations

import numpy as np
import pytest

from napari_samed2.ui.objects import ObjectList

pytestmark = pytest.mark.gui


def test_add_select_rename_remove(qtbot):
    objects = ObjectList()
    qtbot.addWidget(objects)
    objects.colour_of = lambda obj_id: np.array([1.0, 0.0, 0.0, 1.0] if obj_id == 3 else [0.5] * 4)
    selected, renamed, removed = [], [], []
    objects.selected.connect(selected.append)
    objects.renamed.connect(lambda obj_id, name: renamed.append((obj_id, name)))
    objects.removed.connect(removed.append)
    objects.add(3, "nucleus")
    objects.add(5, select=False)
    assert objects.ids() == [3, 5] and objects.current_id() == 3 and selected == [3]
    assert objects.name_of(5) == "object 5"
    swatch = objects.list.item(0).icon().pixmap(14, 14).toImage().pixelColor(7, 7)
    assert (swatch.red(), swatch.green(), swatch.blue()) == (255, 0, 0)
    objects.list.item(1).setText("mitochondrion")  # what a double-click edit does
    assert renamed == [(5, "mitochondrion")] and objects.name_of(5) == "mitochondrion"
    objects.select(5)
    assert selected == [3, 5]
    objects.remove(3)
    assert removed == [3] and objects.ids() == [5]
    with pytest.raises(ValueError, match="label id must be >= 1 .0 is background., got 0"):
        objects.add(0)
