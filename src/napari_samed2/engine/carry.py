"""The carry policy: which earlier mask a tracked frame starts from (the neighbour's, or the
nearest confident one), moved with the object (``motion``) and kept connected (``connected``)."""

from __future__ import annotations

import numpy as np
import torch

from .connectivity import keep_connected
from .frames import FrameSource
from .memory import passes_gate
from .motion import object_shift, shift_logits
from .prompts import MASK_LOGIT_CLAMP
from .results import FrameResult
from .settings import SessionSettings
from .tracking import ObjectTrack


class CarryPolicy:
    """What a propagated frame of an object takes from the frame it is tracked from.

    Parameters
    ----------
    memory : {"selective", "sam2"}
        The session's memory mode (only the selective memory looks past a doubtful frame).
    settings : SessionSettings
        Its memory settings give ``carry_lookback``.
    frames : FrameSource
        The session's frames (motion is estimated on their intensities).
    threshold : float
        The model's mask threshold.
    carry_mask : bool
        Whether the model takes the neighbour's mask logits as its mask prompt.
    """

    def __init__(
        self,
        *,
        memory: str,
        settings: SessionSettings,
        frames: FrameSource,
        threshold: float,
        carry_mask: bool,
    ):
        self.memory = memory
        self.settings = settings
        self.frames = frames
        self.threshold = threshold
        self.carry_mask = carry_mask
        self._grey: dict[int, np.ndarray] = {}  # the last frames motion was estimated on

    def carried_logits(
        self,
        track: ObjectTrack,
        obj_id: int,
        frame: int,
        reverse: bool,
        results: dict[int, FrameResult],
        *,
        region: tuple[int, int, int, int],
        motion: bool,
        gate: float,
    ):
        """The neighbour's mask logits (the frame tracked just before), for carry-mask models.

        With the selective memory a neighbour whose mask failed the confidence gate is passed
        over for the nearest confident frame behind it (`MemorySettings.carry_lookback`): one
        bad frame must not hand its wrong mask to every frame after it. ``region``: the part
        of the frames the object's model input shows; ``motion``, ``gate``: the session's
        options.
        """
        if not self.carry_mask:
            return None
        source = self.carry_source(track, obj_id, frame, reverse, results, gate)
        logits = track.logits.get(source)
        if logits is None:
            return None
        logits = logits.clamp(-MASK_LOGIT_CLAMP, MASK_LOGIT_CLAMP)
        return self.follow_motion(logits, source, frame, region) if motion else logits

    def follow_motion(self, logits: torch.Tensor, source: int, frame: int, region):
        """``logits`` (the object's mask on ``source``) moved by the object's shift from
        ``source`` to ``frame`` (`motion`); unchanged when no shift can be estimated."""
        inside = (logits[0, 0] > self.threshold).cpu().numpy()
        if not inside.any():
            return logits
        row0, col0, row1, col1 = region
        rows, cols = row1 - row0, col1 - col0
        scale_r, scale_c = rows / inside.shape[0], cols / inside.shape[1]
        ys, xs = np.nonzero(inside)
        box = (
            int(ys.min() * scale_r),
            int(xs.min() * scale_c),
            int(np.ceil((ys.max() + 1) * scale_r)),
            int(np.ceil((xs.max() + 1) * scale_c)),
        )
        before = self.grey_frame(source)[row0:row1, col0:col1]
        after = self.grey_frame(frame)[row0:row1, col0:col1]
        shift = object_shift(before, after, box)
        if shift is None:
            return logits
        return shift_logits(logits, shift[0] / scale_r, shift[1] / scale_c)

    def grey_frame(self, frame: int) -> np.ndarray:
        """A frame as the model sees its intensities (one channel), for motion estimates; the
        last few are kept (every object of a step compares the same two frames)."""
        if frame not in self._grey:
            if len(self._grey) >= 4:
                self._grey.pop(next(iter(self._grey)))
            self._grey[frame] = self.frames.scaled(frame).mean(axis=-1, dtype=np.float32)
        return self._grey[frame]

    def carry_source(
        self,
        track: ObjectTrack,
        obj_id: int,
        frame: int,
        reverse: bool,
        results: dict[int, FrameResult],
        gate: float,
    ) -> int:
        """The frame whose mask ``frame`` is tracked from: the one just before (in the
        direction of travel) or, with the selective memory, the nearest one that passed the
        ``gate``."""
        step = 1 if reverse else -1
        if self.memory == "selective":
            for distance in range(1, self.settings.memory.carry_lookback + 1):
                candidate = frame + step * distance
                if candidate not in track.logits:
                    break
                if self.confident(track, obj_id, candidate, results, gate):
                    return candidate
        return frame + step

    def connected_logits(
        self,
        track: ObjectTrack,
        obj_id: int,
        frame: int,
        reverse: bool,
        out: dict,
        results: dict[int, FrameResult],
        gate: float,
    ):
        """The frame's logits without the parts that do not touch the object's mask on the
        frame it was tracked from (`connected`)."""
        source = self.carry_source(track, obj_id, frame, reverse, results, gate)
        reference = track.logits.get(source)
        if reference is None or reference.shape != out["pred_masks"].shape:
            return out["pred_masks"]
        return keep_connected(out["pred_masks"], reference, self.threshold)

    def confident(
        self,
        track: ObjectTrack,
        obj_id: int,
        frame: int,
        results: dict[int, FrameResult],
        gate: float,
    ) -> bool:
        """Whether the object's mask on ``frame`` was prompted or passed the memory gate."""
        if frame in track.cond:
            return True
        result = results.get(frame)
        if result is None or obj_id not in result.iou:
            return False
        return passes_gate(result.iou[obj_id], result.object_score[obj_id], gate)
