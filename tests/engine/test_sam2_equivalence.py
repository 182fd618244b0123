"""memory="sam2" reproduces the sam2 package's own SAM2VideoPredictor, mask for mask."""

from __future__ import annotations

import numpy as np
from PIL import Image

from napari_samed2.engine import PropagationSession
from napari_samed2.model import small_config

from .conftest import iou, moving_disk_video, present_object_net

PREDICTOR = "sam2.sam2_video_predictor.SAM2VideoPredictor"


def _jpeg_round_trip(video: np.ndarray, folder) -> np.ndarray:
    """Write frames as JPEG (all the predictor reads) and decode them with the same decoder,
    so both sides see identical pixels."""
    decoded = []
    for index, frame in enumerate(video):
        path = folder / f"{index:05d}.jpg"
        Image.fromarray(frame).save(path)
        decoded.append(np.array(Image.open(path).convert("RGB")))
    return np.stack(decoded)


def _predictor_and_ours(tmp_path, **session_options):
    config = small_config()
    net = present_object_net(config, seed=1)
    predictor = present_object_net(config, seed=2, target=PREDICTOR)
    predictor.load_state_dict(net.state_dict())
    video, _ = moving_disk_video(frames=8, rows=72, cols=96, seed=3)
    pixels = _jpeg_round_trip(video, tmp_path)
    state = predictor.init_state(str(tmp_path))
    predictor.add_new_points_or_box(state, frame_idx=3, obj_id=1, points=[[48, 36]], labels=[1])
    predictor.add_new_points_or_box(state, frame_idx=3, obj_id=2, box=[[30, 20], [70, 55]])
    theirs = {}
    for name, reverse in (("forward", False), ("backward", True)):
        for frame, obj_ids, logits in predictor.propagate_in_video(state, reverse=reverse):
            for i, obj_id in enumerate(obj_ids):
                theirs[name, frame, obj_id] = (logits[i, 0] > 0).numpy()
    session = PropagationSession(net, pixels, **session_options)
    session.add_points(3, 1, [[36, 48]], [1])  # (row, col) = sam2's (x, y) swapped
    session.add_box(3, 2, (20, 30, 55, 70))
    ours = {}
    for name in ("forward", "backward"):
        for result in session.propagate(name, start=3):
            for obj_id, mask in result.masks.items():
                ours[name, result.frame, obj_id] = mask
    return session, ours, theirs


def test_a_sam2_network_with_default_options_gives_the_video_predictors_masks(tmp_path):
    # no option at all: the network's profile (sam2's) chooses sam2's memory, masks as decoded,
    # no connectivity, no flips
    session, ours, theirs = _predictor_and_ours(tmp_path)
    options = session.options
    assert (options.memory, options.non_overlap, options.connected, options.flips) == (
        "sam2", False, False, False,
    )  # fmt: skip
    assert sorted(ours) == sorted(theirs) and len(theirs) == 2 * (5 + 4)
    scores = {key: iou(ours[key], theirs[key]) for key in theirs}
    assert min(scores.values()) >= 0.999, scores
    # the objects overlap somewhere: one object per pixel would have changed a mask
    assert any((theirs[k, f, 1] & theirs[k, f, 2]).any() for k, f, o in theirs if o == 1)
    # and connectivity would have too: the default is not only "switches off" by luck
    _, connected, _ = _predictor_and_ours(tmp_path, connected=True, non_overlap=True)
    assert any(not (connected[key] == ours[key]).all() for key in ours)


def test_sam2_mode_matches_video_predictor_forward_and_backward(tmp_path):
    options = {"memory": "sam2", "non_overlap": False, "connected": False}
    _, ours, theirs = _predictor_and_ours(tmp_path, **options)
    assert sorted(ours) == sorted(theirs)
    assert len(theirs) == 2 * (5 + 4)
    scores = {key: iou(ours[key], theirs[key]) for key in theirs}
    assert min(scores.values()) >= 0.999, scores
    # the comparison is not vacuous: masks are neither empty nor the whole frame
    coverage = [theirs[key].mean() for key in theirs]
    assert 0.0 < min(coverage) and max(coverage) < 1.0


def test_sam2_mode_matches_predictor_for_mask_prompts(tmp_path):
    config = small_config()
    net = present_object_net(config, seed=4)
    predictor = present_object_net(config, seed=5, target=PREDICTOR)
    predictor.load_state_dict(net.state_dict())
    video, disks = moving_disk_video(frames=6, rows=64, cols=80, seed=6)
    pixels = _jpeg_round_trip(video, tmp_path)

    state = predictor.init_state(str(tmp_path))
    predictor.add_new_mask(state, frame_idx=2, obj_id=7, mask=disks[2])
    theirs = {
        frame: (logits[0, 0] > 0).numpy()
        for frame, _, logits in predictor.propagate_in_video(state, reverse=True)
    }
    session = PropagationSession(net, pixels, memory="sam2", non_overlap=False, connected=False)
    session.add_mask(2, 7, disks[2])
    ours = {result.frame: result.masks[7] for result in session.propagate("backward")}
    assert sorted(ours) == sorted(theirs) == [0, 1, 2]
    assert min(iou(ours[f], theirs[f]) for f in theirs) >= 0.999


def test_object_prompted_after_the_start_frame_tracks_without_dtype_error(small_net, video):
    """sam2's predictor fails on CPU here (bfloat16 memories, no object pointer yet)."""
    frames, _ = video
    session = PropagationSession(
        small_net, frames, memory="sam2", non_overlap=False, connected=False
    )
    session.add_points(1, 1, [[32, 24]], [1])
    session.add_points(5, 2, [[32, 40]], [1])
    results = list(session.propagate("forward"))
    assert [r.frame for r in results] == list(range(1, len(frames)))
    assert all(set(r.masks) == {1, 2} for r in results)
