"""Flip averaging of prompts on single 2-D images (test-time augmentation)."""

from __future__ import annotations

import numpy as np
import torch

from napari_samed2.engine import PropagationSession
from napari_samed2.engine.masks import mask_from_logits

from .conftest import moving_disk_video


def _logits(session, obj_id):
    return session.track(obj_id).logits[0]


def test_a_prompt_on_a_2d_image_averages_the_four_flips(small_net):
    image = moving_disk_video(frames=1)[0][0]
    session = PropagationSession(small_net, image, non_overlap=False, flips=True)
    assert session.averages_flips
    result = session.add_points(0, 1, [[30, 20]], [1])
    # the same prompt, by hand, on the image flipped each way (sessions without averaging)
    rows, cols = image.shape
    expected = []
    for flip, point in (((), (30, 20)), ((0,), (rows - 31, 20)), ((1,), (30, cols - 21)),
                        ((0, 1), (rows - 31, cols - 21))):  # fmt: skip
        alone = PropagationSession(small_net, np.flip(image, flip).copy(), flips=False)
        alone.add_points(0, 1, [point], [1])
        expected.append(torch.flip(_logits(alone, 1), [axis + 2 for axis in flip]))
    average = torch.stack(expected).mean(0)
    assert torch.allclose(_logits(session, 1), average, atol=1e-5)
    expected_mask = mask_from_logits(
        average, session.region_of(1), session.frame_shape, session.mask_threshold
    )
    np.testing.assert_array_equal(result.masks[1], expected_mask)
    # a box and a mask prompt go through the flips too; removing the object clears them
    session.add_box(0, 2, (10, 10, 40, 50))
    session.add_mask(0, 3, result.masks[1])
    assert all(set(other.object_ids) == {1, 2, 3} for other in session.flip_sessions.values())
    session.remove_object(2)
    assert all(set(other.object_ids) == {1, 3} for other in session.flip_sessions.values())
    session.close()


def test_stacks_and_the_switch_turn_flip_averaging_off(small_net):
    video = moving_disk_video(frames=3)[0]
    assert not PropagationSession(small_net, video, flips=True).averages_flips
    plain = PropagationSession(small_net, video[0], flips=False)
    plain.add_points(0, 1, [[30, 20]], [1])
    assert not plain.averages_flips and plain.flip_sessions == {}
