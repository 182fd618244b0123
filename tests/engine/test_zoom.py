"""The zoom for small objects: a region of the frame shown to the model, masks pasted back."""

from __future__ import annotations

import numpy as np
import pytest

from napari_samed2.engine import FrameDataError, PromptError, PropagationSession, zoom_region

from .conftest import iou


def _nucleus_stack(frames=3, size=512, radius=6):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for t in range(frames):
        centre = (300, 200 + t)
        disk = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2
        image = rng.normal(60, 10, (size, size))
        image[disk] += 150
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        masks.append(disk)
    return np.stack(images), np.stack(masks)


def test_zoom_region_is_square_inside_the_frame_and_scales_with_prompts():
    assert zoom_region([[300, 200]], (512, 512)) == (268, 168, 332, 232)
    assert zoom_region([[2, 3]], (512, 512)) == (0, 0, 64, 64)  # clipped into the frame
    row0, col0, row1, col1 = zoom_region([[100, 100], [140, 130]], (512, 512), context=3)
    assert row1 - row0 == col1 - col0 == 120
    assert zoom_region([[10, 10]], (40, 50)) == (0, 0, 40, 40)


def test_small_object_survives_with_the_zoom(small_net):
    """A 12-px nucleus in a 512-px frame is 1.5 low-res mask pixels without the zoom (256-px
    model, 64-px masks) and is lost; with a 64-px region it is kept."""
    frames, disks = _nucleus_stack()
    plain = PropagationSession(small_net, frames, memory="sam2")
    region = zoom_region([[300, 200]], plain.frame_shape)
    zoomed = PropagationSession(small_net, frames, memory="sam2", region=region)
    scores = {}
    for name, session in (("plain", plain), ("zoomed", zoomed)):
        result = session.add_mask(0, 1, disks[0])
        assert result.masks[1].shape == (512, 512)
        scores[name] = iou(result.masks[1], disks[0])
        propagated = list(session.propagate("forward"))
        assert all(r.masks[1].shape == (512, 512) for r in propagated)
    assert scores["zoomed"] > 0.85 > scores["plain"]
    row0, col0, row1, col1 = region
    outside = np.ones((512, 512), bool)
    outside[row0:row1, col0:col1] = False
    assert not any(r.masks[1][outside].any() for r in zoomed.results.values())


def test_region_errors(small_net):
    frames, _ = _nucleus_stack(frames=1, size=128)
    with pytest.raises(FrameDataError, match="region"):
        PropagationSession(small_net, frames, region=(10, 10, 5, 20))
    with pytest.raises(FrameDataError, match="region"):
        PropagationSession(small_net, frames, region=(0, 0, 200, 20))
    session = PropagationSession(small_net, frames, region=(0, 0, 64, 64))
    with pytest.raises(PromptError, match="outside the session's region"):
        session.add_points(0, 1, [[100, 100]], [1])


def test_fit_region_keeps_the_prompt_and_grows_until_the_mask_fits(small_net):
    from napari_samed2.engine.zoom import ObjectPrompt, _touches_border, fit_region

    frames, _ = _nucleus_stack(frames=1, size=256)
    prompt = ObjectPrompt(0, np.array([[300 - 256 + 100, 150]]), np.array([1]))
    opened = []

    def open_session(region):
        opened.append(tuple(region))
        return PropagationSession(small_net, frames, region=region)

    region, session = fit_region(open_session, prompt, (256, 256), rounds=3)
    row0, col0, row1, col1 = region
    assert row1 - row0 == col1 - col0 and 0 <= row0 and row1 <= 256 and 0 <= col0 and col1 <= 256
    assert row0 <= 144 < row1 and col0 <= 150 < col1
    assert opened[0] == zoom_region([[144, 150]], (256, 256))  # the click's first guess
    sides = [r[2] - r[0] for r in opened]
    assert sides == sorted(sides) and len(set(sides)) == len(sides)  # only ever grows
    mask = session.results[0].masks[1]
    if len(opened) < 3 and row1 - row0 < 256:
        assert not _touches_border(mask, region)


def test_zoomed_pipeline_with_a_full_frame_region_equals_the_plain_session(small_net):
    from napari_samed2.pipeline import Prompt, segment_stack, segment_stack_zoomed

    frames, _ = _nucleus_stack(frames=3, size=128)
    prompts = [Prompt("point", 1, 2, (60.0, 70.0))]
    plain = segment_stack(PropagationSession(small_net, frames), prompts)
    zoomed = segment_stack_zoomed(small_net, frames, prompts, min_size=128)
    assert np.array_equal(plain.labels, zoomed.labels)
    assert set(zoomed.results) == {0, 1, 2} and set(zoomed.results[1].masks) == {2}
    assert zoomed.results[1].prompted[2] and not zoomed.results[0].prompted[2]


def test_zoomed_objects_each_get_their_own_region(small_net):
    from napari_samed2.engine.zoom import ObjectPrompt, ObjectZoomSessions

    frames, _ = _nucleus_stack(frames=2, size=512)
    sessions = ObjectZoomSessions(small_net, frames, rounds=1)
    sessions.add(1, ObjectPrompt(0, np.array([[300.0, 200.0]]), np.array([1])))
    sessions.add(2, ObjectPrompt(0, None, None, (20.0, 30.0, 60.0, 90.0)))
    assert sessions.regions[1] == zoom_region([[300, 200]], (512, 512))
    assert sessions.regions[2] == zoom_region([[20, 30], [60, 90]], (512, 512))
    seen = list(sessions.propagate("forward"))
    assert sorted({obj for obj, _ in seen}) == [1, 2] and len(seen) == 4
    for frame, result in sessions.results.items():
        assert set(result.masks) == {1, 2} and result.masks[1].shape == (512, 512)
        row0, col0, row1, col1 = sessions.regions[1]
        outside = np.ones((512, 512), bool)
        outside[row0:row1, col0:col1] = False
        assert not result.masks[1][outside].any(), frame
    with pytest.raises(PromptError, match="outside the session's region"):
        sessions.add(1, ObjectPrompt(0, np.array([[5.0, 5.0]]), np.array([1])))
    with pytest.raises(ValueError, match="clicks or a box"):
        sessions.add(3, ObjectPrompt(0))
    sessions.close()
