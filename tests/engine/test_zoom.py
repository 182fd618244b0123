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


def test_zoom_scales_double_from_the_click_up_to_the_view():
    from napari_samed2.engine.frames import zoom_scales

    scales = zoom_scales([[300, 200]], (0, 0, 512, 700))
    assert [r[2] - r[0] for r in scales] == [64, 128, 256, 512]
    assert scales[0] == zoom_region([[300, 200]], (512, 700))
    assert scales[-1] == (0, 0, 512, 700)  # the whole view last, not cut square
    for row0, col0, row1, col1 in scales:
        assert row0 <= 300 < row1 and col0 <= 200 < col1
    inside = zoom_scales([[40, 40]], (20, 30, 120, 130))  # a session region
    assert inside == [(20, 30, 84, 94), (20, 30, 120, 130)]
    box = zoom_scales([[100, 100], [150, 150]], (0, 0, 1024, 1024))  # 4 x 50 px: from 200
    assert [r[2] - r[0] for r in box] == [200, 256, 512, 1024]


def test_zoom_session_gives_objects_regions_and_pastes_masks_back(small_net):
    frames, disks = _nucleus_stack(frames=2, size=512)
    session = PropagationSession(small_net, frames, zoom=True)
    session.add_mask(0, 1, disks[0])  # a mask prompt sets the region from the mask
    session.add_points(0, 2, [[100, 400]], [1])
    region = session.region_of(1)
    assert region == zoom_region([[294, 194], [306, 206]], (512, 512), context=4.0)
    clicked = session.region_of(2)
    assert clicked[0] <= 100 < clicked[2] and clicked[1] <= 400 < clicked[3]
    results = list(session.propagate("forward"))
    for result in results:
        for obj_id in (1, 2):
            row0, col0, row1, col1 = session.region_of(obj_id)
            outside = np.ones((512, 512), bool)
            outside[row0:row1, col0:col1] = False
            assert result.masks[obj_id].shape == (512, 512)
            assert not result.masks[obj_id][outside].any()
    # later prompts must fall in the object's region; a new object may go anywhere
    with pytest.raises(PromptError, match="outside the session's region"):
        session.add_points(1, 1, [[5, 5]], [1])
    session.add_points(1, 3, [[5, 5]], [1])
    session.close()


def test_zoom_off_and_a_whole_frame_zoom_give_the_plain_session(small_net):
    from napari_samed2.pipeline import Prompt, segment_stack

    frames, _ = _nucleus_stack(frames=3, size=64)  # smaller than the first zoom region
    prompts = [Prompt("point", 1, 2, (30.0, 40.0))]
    plain = segment_stack(PropagationSession(small_net, frames), prompts)
    zoomed_session = PropagationSession(small_net, frames, zoom=True)
    zoomed = segment_stack(zoomed_session, prompts)
    assert zoomed_session.region_of(2) == (0, 0, 64, 64)
    np.testing.assert_array_equal(plain.labels, zoomed.labels)


def test_zoomed_mask_prompt_takes_its_region_from_the_mask(small_net):
    frames, disks = _nucleus_stack(frames=2, size=512)
    session = PropagationSession(small_net, frames, memory="sam2", zoom=True)
    result = session.add_mask(0, 1, disks[0])
    row0, col0, row1, col1 = session.region_of(1)
    assert row1 - row0 == col1 - col0 == 64  # a 12-px disk: 4x its extent is under the minimum
    assert iou(result.masks[1], disks[0]) > 0.85
    propagated = list(session.propagate("forward"))
    assert [r.frame for r in propagated] == [0, 1] and propagated[1].masks[1].shape == (512, 512)
