"""The write policy of a run's results: which masks of a frame go into the labels.

A run brings one `FrameResult` per frame; not all of its masks may overwrite what the labels
hold. A propagated frame never overwrites a frame the user confirmed for that object, nor an
object the user painted there since the last accept. A prompt writes only its own objects,
which take the pixels the engine gave them from the other objects, except from those holding
unaccepted paint on that frame.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameWrite:
    """What to merge into one frame of labels (see `merge.merge_objects`).

    Attributes
    ----------
    masks : dict of int to ndarray of bool
        The objects to write and their masks; empty when nothing is written.
    takes_from : frozenset of int
        Labels whose pixels ``masks`` may take besides the background.
    """

    masks: dict[int, np.ndarray]
    takes_from: frozenset[int] = frozenset()


def frame_write(
    frame: int,
    masks: Mapping[int, np.ndarray],
    *,
    write: Collection[int] | None = None,
    painted: Collection[int] = (),
    protected: Mapping[int, Collection[int]] | None = None,
) -> FrameWrite:
    """Which of a result's ``masks`` on ``frame`` are written into the labels.

    Parameters
    ----------
    frame : int
        The result's frame.
    masks : mapping of int to ndarray of bool
        The result's masks, object id to mask.
    write : collection of int, optional
        For a prompt or a correction: the objects it writes (none for a correction, whose
        painted mask already is in the labels). None for a propagated frame.
    painted : collection of int
        Objects painted on ``frame`` and not accepted yet: they keep their pixels.
    protected : mapping of int to collection of int, optional
        Object id to the frames a propagation must not overwrite (those the user confirmed).

    Returns
    -------
    FrameWrite
    """
    painted = set(painted)
    if write is not None:
        chosen = {obj: masks[obj] for obj in write if obj in masks}
        if not chosen:
            return FrameWrite({})
        # the engine gave the prompted object the pixels where its logit beats the other
        # objects': they give those up (unless they hold unaccepted paint)
        return FrameWrite(chosen, frozenset(obj for obj in masks if obj not in chosen) - painted)
    protected = protected or {}
    # never overwrite a frame the user confirmed, or one painted since the run began
    chosen = {
        obj: mask
        for obj, mask in masks.items()
        if frame not in protected.get(obj, ()) and obj not in painted
    }
    return FrameWrite(chosen)
