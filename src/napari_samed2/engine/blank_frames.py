"""Blank frames: one `ConstantFrameWarning` per session, naming how many of the frames read so
far were constant or all NaN, and which."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from .frames import ConstantFrameWarning, FrameSource


class BlankFrames:
    """Warns once about the blank frames of ``sources`` (the session's and its zooms').

    ``sources`` is the session's list of frame sources; sources added to it later count too.
    ``reported`` is True once the warning was given (or must not be: a helper session of the
    same image).
    """

    def __init__(self, sources: Sequence[FrameSource], num_frames: int) -> None:
        self.sources = sources
        self.num_frames = num_frames
        self.reported = False  # ConstantFrameWarning is given once per session

    def report(self, prompted: int | None = None) -> None:
        """Warn once per session about blank frames (`ConstantFrameWarning`).

        Called when a propagation run ends, naming every blank frame read so far (the run's
        and its prompts'), and after a prompt on a frame that is itself blank (the user
        should know at once). A volume with a hundred empty slices gets one warning, not
        a hundred.
        """
        if self.reported:
            return
        blank: dict[int, str] = {}
        for source in self.sources:
            blank.update(source.constant_frames)
        if not blank or (prompted is not None and prompted not in blank):
            return
        self.reported = True
        frames = sorted(blank)
        first = frames[0]
        noun = "frame is" if len(frames) == 1 else "frames are"
        warnings.warn(
            f"{len(frames)} {noun} blank (constant or all NaN) among the frames read so far "
            f"(of {self.num_frames}): {frame_ranges(frames)} (frame {first} is "
            f"{blank[first]}); they are segmented as blank images. This warning is given "
            "once per session.",
            ConstantFrameWarning,
            stacklevel=3,
        )


def frame_ranges(frames: list[int], most: int = 8) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"frames 0-2, 5, 7-8"`` (at most ``most`` runs listed)."""
    runs: list[list[int]] = []
    for frame in frames:
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most]]
    if len(runs) > most:
        parts.append("...")
    return ("frame " if len(frames) == 1 else "frames ") + ", ".join(parts)
