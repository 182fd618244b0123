"""`samed2 demo` with a display: the demo runs through the docked widget."""

from __future__ import annotations

import numpy as np
import pytest

from napari_samed2.ui.demo import show_demo

pytestmark = pytest.mark.gui


def test_show_demo_prompts_segments_and_propagates(make_napari_viewer, tiny_model, qtbot):
    from napari_samed2.demo import demo_prompts
    from napari_samed2.pipeline import Prompt
    from napari_samed2.synthetic import nuclei_volume

    sample = nuclei_volume(shape=(8, 64, 64), seed=3)
    prompts, _ = demo_prompts(sample.labels, count=2)
    middle = prompts[0].frame
    prompts.append(Prompt("negative", middle, 1, (2.0, 2.0)))
    prompts.append(Prompt("box", middle + 1, 2, (10.0, 10.0, 30.0, 30.0)))
    viewer = make_napari_viewer()
    widget = show_demo(viewer, sample, prompts, model=tiny_model)
    script = widget.demo_script
    qtbot.waitUntil(lambda: not script.actions and widget.run is None, timeout=60_000)
    session = widget.state.session
    assert session.confirmed_frames == {1: [middle], 2: [middle, middle + 1]}
    points = widget.state.points
    assert list(points.features["sign"]) == ["positive", "negative", "positive"]
    assert len(widget.state.boxes.data) == 1
    labels = widget.state.labels.data
    for frame in range(8):
        for obj_id in (1, 2):
            mask = session.results[frame].masks[obj_id]
            # where the two objects' masks do not overlap, the labels follow the engine
            other = session.results[frame].masks[3 - obj_id]
            np.testing.assert_array_equal((labels[frame] == obj_id) & ~other, mask & ~other)
