"""The adapter to sam2's internals reproduces sam2's own step, and is its only caller."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from sam2.modeling.sam2_base import SAM2Base

import napari_samed2
from napari_samed2.model import sam2_step, small_config

from ..engine.conftest import present_object_net

FRAMES = 6


@pytest.fixture(scope="module")
def net_and_levels():
    net = present_object_net(small_config()).eval()  # masks not blanked: comparisons count
    size = int(net.image_size)
    images = torch.rand(FRAMES, 3, size, size)
    with torch.inference_mode():
        levels = sam2_step.FeatureLevels.from_maps(*sam2_step.encode_images(net, images))
    return net, levels


def _frame(levels: sam2_step.FeatureLevels, t: int) -> sam2_step.FeatureLevels:
    return levels.select(torch.tensor([t]))


def _click(x: float, y: float) -> dict[str, torch.Tensor]:
    return {
        "point_coords": torch.tensor([[[x, y]]], dtype=torch.float32),
        "point_labels": torch.tensor([[1]], dtype=torch.int32),
    }


def _ours(net, levels, t, output_dict, is_init_cond, **prompts) -> dict:
    """The adapter's step and memory encoder, stored as sam2's track_step stores a frame."""
    step = sam2_step.track_step(
        net,
        levels=levels,
        frame=t,
        is_init_cond=is_init_cond,
        memory=sam2_step.Sam2Memory(output_dict=output_dict, num_frames=FRAMES),
        **prompts,
    )
    features, pos_enc = sam2_step.encode_memory(
        net,
        levels=levels,
        high_res_masks=step.high_res_masks,
        object_score_logits=step.object_score_logits,
        from_points=prompts.get("point_inputs") is not None,
    )
    return {
        "pred_masks": step.low_res_masks,
        "obj_ptr": step.obj_ptr,
        "object_score_logits": step.object_score_logits,
        "maskmem_features": features,
        "maskmem_pos_enc": pos_enc,
        "ious": step.ious,
    }


def test_track_step_and_memory_encoder_equal_sam2s_track_step(net_and_levels):
    net, levels = net_and_levels
    size = int(net.image_size)
    mask = torch.zeros(1, 1, size, size)
    mask[..., 60:120, 80:150] = 1.0
    # frame -> (is_init_cond, prompts): a click, propagation, a mask prompt, propagation on
    plan = {0: (True, {"point_inputs": _click(100.0, 90.0)})}
    plan.update({t: (False, {}) for t in (1, 2, 4, 5)})
    plan[3] = (False, {"mask_inputs": mask})
    theirs = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    ours = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    with torch.inference_mode():
        for t, (is_init_cond, prompts) in plan.items():
            frame = _frame(levels, t)
            expected = net.track_step(
                t, is_init_cond, *frame, prompts.get("point_inputs"),
                prompts.get("mask_inputs"), theirs, FRAMES,
            )  # fmt: skip
            got = _ours(net, frame, t, ours, is_init_cond, **prompts)
            for key in ("pred_masks", "obj_ptr", "object_score_logits", "maskmem_features"):
                assert torch.equal(got[key], expected[key]), (t, key)
            assert got["ious"].shape in ((1, 1), (1, 3))  # kept: track_step drops it
            assert (got["pred_masks"] > 0).any() and (got["pred_masks"] < 0).any()
            kind = "cond_frame_outputs" if prompts else "non_cond_frame_outputs"
            theirs[kind][t], ours[kind][t] = expected, got

        # a new click on a tracked frame, decoded with the frame's previous logits (sam2's
        # prev_sam_mask_logits) as the mask prompt
        frame, previous = _frame(levels, 4), theirs["non_cond_frame_outputs"][4]["pred_masks"]
        expected = net.track_step(
            4, False, *frame, _click(30.0, 40.0), None, theirs, FRAMES,
            prev_sam_mask_logits=previous,
        )  # fmt: skip
        got = _ours(net, frame, 4, ours, False, point_inputs=_click(30.0, 40.0),
                    prompt_logits=previous)  # fmt: skip
    assert torch.equal(got["pred_masks"], expected["pred_masks"])
    assert not torch.equal(got["pred_masks"], previous)


def test_chosen_memory_laid_out_as_sam2s_gives_sam2s_features(net_and_levels):
    """The selective memory's layout (temporal slots, pointer encodings) is sam2's own: given
    the memories sam2 would choose, it conditions the frame as sam2 does (token order aside)."""
    net, levels = net_and_levels
    outputs = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    with torch.inference_mode():
        for t in range(4):
            kind = "cond_frame_outputs" if t == 0 else "non_cond_frame_outputs"
            prompts = {"point_inputs": _click(100.0, 90.0)} if t == 0 else {}
            outputs[kind][t] = _ours(net, _frame(levels, t), t, outputs, t == 0, **prompts)
        frame = 4
        sam2s = sam2_step.conditioned_features(
            net,
            levels=_frame(levels, frame),
            frame=frame,
            is_init_cond=False,
            memory=sam2_step.Sam2Memory(output_dict=outputs, num_frames=FRAMES),
        )
        recent = sorted(outputs["non_cond_frame_outputs"].items(), key=lambda i: frame - i[0])
        cond = outputs["cond_frame_outputs"][0]
        chosen = sam2_step.ChosenMemory(
            masks=[(0, cond["maskmem_features"])]
            + [
                (net.num_maskmem - rank, out["maskmem_features"])
                for rank, (_, out) in enumerate(recent[: net.num_maskmem - 1], 1)
            ],
            mask_pos_enc=cond["maskmem_pos_enc"],
            cond_pointers={0: cond["obj_ptr"]},
            recent_pointers=[(t, out["obj_ptr"]) for t, out in recent],
            num_frames=FRAMES,
        )
        ours = sam2_step.conditioned_features(
            net, levels=_frame(levels, frame), frame=frame, is_init_cond=False, memory=chosen
        )
        # a different choice gives different features: the comparison is not vacuous
        fewer = sam2_step.conditioned_features(
            net,
            levels=_frame(levels, frame),
            frame=frame,
            is_init_cond=False,
            memory=sam2_step.ChosenMemory(
                masks=chosen.masks[:1],
                mask_pos_enc=chosen.mask_pos_enc,
                cond_pointers=chosen.cond_pointers,
                recent_pointers=[],
                num_frames=FRAMES,
            ),
        )
    assert ours.shape == sam2s.shape == (1, net.hidden_dim, *levels.feat_sizes[-1])
    torch.testing.assert_close(ours, sam2s, rtol=1e-4, atol=1e-5)
    assert (fewer - sam2s).abs().max() > 1e-3


def test_only_the_adapter_calls_private_sam2base_methods():
    private = sorted(
        name
        for name, value in vars(SAM2Base).items()
        if name.startswith("_") and not name.startswith("__") and callable(value)
    )
    assert "_forward_sam_heads" in private
    pattern = re.compile(r"\.(" + "|".join(map(re.escape, private)) + r")\(")
    package = Path(napari_samed2.__file__).parent
    callers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    )
    assert callers == ["model/sam2_step.py"], callers
