"""Temporal connectivity: a tracked mask keeps only the parts that touch where the object was.

Propagating frame by frame, a decoder sometimes lights up small islands on other objects that
look alike (another nucleus, a bright spot). Carried to the next frame as the mask prompt,
and shown in the Labels layer, such an island is where drift starts. An object moves a few
pixels between neighbouring frames, so on its low-resolution mask grid (4 px a cell for a
256-px model, 16 for SAM2's 1024) its new mask overlaps the old one: a component that does not
is someone else.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def keep_connected(logits: torch.Tensor, reference: torch.Tensor, threshold: float = 0.0):
    """``logits`` with every component that does not overlap ``reference`` switched off.

    Parameters
    ----------
    logits : torch.Tensor
        ``(1, 1, h, w)`` mask logits of the frame just tracked.
    reference : torch.Tensor
        ``(1, 1, h, w)`` mask logits of the frame it was tracked from.
    threshold : float
        The mask threshold: a pixel is in the mask where its logit is above it.

    Returns
    -------
    torch.Tensor
        ``logits`` itself when nothing is dropped: every part touches, or there is no telling
        (either mask is empty, or no part touches: the object jumped or was lost); otherwise
        a copy where dropped pixels hold ``threshold - 1``.
    """
    if logits.shape != reference.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and reference {tuple(reference.shape)} differ in shape"
        )
    current = (logits[0, 0] > threshold).cpu().numpy()
    before = (reference[0, 0] > threshold).cpu().numpy()
    if not current.any() or not before.any():
        return logits
    components, count = ndimage.label(current)
    touching = np.unique(components[current & before])
    if count < 2 or touching.size == 0:
        return logits  # one part, or none touches (a jump: which part is right?)
    dropped = current & ~np.isin(components, touching)
    if not dropped.any():
        return logits
    cleaned = logits.clone()
    cleaned[0, 0][torch.from_numpy(dropped).to(logits.device)] = threshold - 1.0
    return cleaned
