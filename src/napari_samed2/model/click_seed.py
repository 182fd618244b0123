"""Click seeds: prompts drawn as a dense mask prompt, for models trained to read them.

SAM's decoder finds a click only through attention between the click's positional encoding
and the image's, which a small network trained from scratch on a CPU learns very slowly (the
embedded nano model ignored the click position after 1400 steps). A model whose preprocessing
sets ``click_seed`` also receives its clicks and boxes painted into the dense mask prompt
(sam2's ``mask_inputs``, added to the image embedding by convolutions), so the object's place
is given spatially: positive clicks as positive Gaussian blobs, negative clicks as negative
blobs, a box as a filled rectangle. The seed is added to the previous mask logits when there
are some (sam2 feeds those on refinement clicks), in training and inference alike.
"""

from __future__ import annotations

import torch

SEED_PEAK = 10.0  # logit at a click's centre
SEED_SIGMA = 1.5  # blob width in cells of the mask-prompt grid (4 model pixels each)
BOX_LOGIT = 4.0  # logit inside a box
POSITIVE, NEGATIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = 1, 0, 2, 3


def click_seed_logits(
    point_coords: torch.Tensor, point_labels: torch.Tensor, image_size: int
) -> torch.Tensor:
    """Seed logits ``(N, 1, image_size // 4, image_size // 4)`` drawn from point prompts.

    Parameters
    ----------
    point_coords : torch.Tensor
        ``(N, P, 2)`` sam2 point coordinates ``(x, y)`` in model-input pixels.
    point_labels : torch.Tensor
        ``(N, P)`` sam2 labels: 1 positive, 0 negative, 2/3 box corners, -1 padding.
    image_size : int
        The model's input size (the grid is a quarter of it, sam2's mask-prompt size).
    """
    if point_coords.dim() != 3 or point_coords.shape[-1] != 2:
        raise ValueError(f"point_coords must be (N, P, 2), got {tuple(point_coords.shape)}")
    if point_labels.shape != point_coords.shape[:2]:
        raise ValueError(
            f"point_labels {tuple(point_labels.shape)} must match point_coords "
            f"{tuple(point_coords.shape[:2])}"
        )
    grid = image_size // 4
    device = point_coords.device
    centres = torch.arange(grid, device=device, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    cells = point_coords.float() / 4.0  # (N, P, 2) in grid cells
    dx = xs[None, None] - cells[..., 0, None, None]
    dy = ys[None, None] - cells[..., 1, None, None]
    blobs = SEED_PEAK * torch.exp(-(dx**2 + dy**2) / (2 * SEED_SIGMA**2))  # (N, P, G, G)
    labels = point_labels[..., None, None]
    sign = (labels == POSITIVE).float() - (labels == NEGATIVE).float()
    seed = (blobs * sign).sum(1)
    seed = seed + _box_fill(cells, point_labels, xs, ys)
    return seed[:, None]


def _box_fill(cells, labels, xs, ys) -> torch.Tensor:
    """``BOX_LOGIT`` inside each object's box (from its first pair of corners), else 0."""
    fill = torch.zeros((cells.shape[0], *xs.shape), device=cells.device)
    for row in range(cells.shape[0]):
        top_left = (labels[row] == BOX_TOP_LEFT).nonzero()
        bottom_right = (labels[row] == BOX_BOTTOM_RIGHT).nonzero()
        if len(top_left) == 0 or len(bottom_right) == 0:
            continue
        (x0, y0), (x1, y1) = cells[row, top_left[0, 0]], cells[row, bottom_right[0, 0]]
        inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
        fill[row] = inside.float() * BOX_LOGIT
    return fill


def with_click_seed(
    point_inputs: dict[str, torch.Tensor] | None,
    prev_logits: torch.Tensor | None,
    image_size: int,
) -> torch.Tensor | None:
    """``prev_logits`` plus the seed of ``point_inputs`` (``prev_logits`` when no points)."""
    if point_inputs is None:
        return prev_logits
    seed = click_seed_logits(point_inputs["point_coords"], point_inputs["point_labels"], image_size)
    if prev_logits is None:
        return seed.to(point_inputs["point_coords"].dtype)
    if prev_logits.shape[-2:] != seed.shape[-2:]:
        raise ValueError(
            f"previous mask logits {tuple(prev_logits.shape)} are not on the mask-prompt grid "
            f"{tuple(seed.shape[-2:])}"
        )
    return prev_logits + seed.to(prev_logits.dtype)
