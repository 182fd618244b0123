"""Fixtures for the engine tests: a small random net that sees objects, a synthetic video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_samed2.model import build_model, small_config


def present_object_net(config: dict, seed: int = 0, target: str | None = None):
    """A random small net whose object-score head says "present", so masks are not empty.

    (With random weights the presence logit is negative and sam2 blanks every mask, which
    would make mask comparisons vacuous.)
    """
    torch.manual_seed(seed)
    net = build_model(config, target=target)
    head = net.sam_mask_decoder.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    with torch.no_grad():
        last.bias.fill_(10.0)
    return net


@pytest.fixture(scope="session")
def small_net():
    return present_object_net(small_config())


def moving_disk_video(frames: int = 8, rows: int = 64, cols: int = 80, seed: int = 0):
    """uint8 video ``(frames, rows, cols)``: a bright disk moving right on noise, and its masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    images, masks = [], []
    for t in range(frames):
        cy, cx = rows // 2, 20 + 4 * t
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < 10**2
        image = rng.normal(60, 15, (rows, cols))
        image[disk] += 120
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        masks.append(disk)
    return np.stack(images), np.stack(masks)


@pytest.fixture(scope="session")
def video():
    return moving_disk_video()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.fixture(scope="session")
def nano():
    """The embedded trained nano model (CPU): masks that follow what is in the image."""
    from napari_samed2.model import load_model

    return load_model("samed2-nano", device="cpu")


def disk_that_ends(frames: int = 16, end: int = 7, again: int = 10, seed: int = 0):
    """uint8 ``(frames, 64, 80)``: a bright disk on noise on frames ``0..end``, nothing on
    the frames between, and a look-alike disk at the same place from ``again`` on (another
    object: the tracked one has ended). Returns the stack and the first object's masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :80]
    disk = (yy - 32) ** 2 + (xx - 40) ** 2 < 10**2
    images = []
    for t in range(frames):
        image = rng.normal(60, 15, (64, 80))
        if t <= end or t >= again:
            image[disk] += 120
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    masks = np.stack([disk & (t <= end) for t in range(frames)])
    return np.stack(images), masks
