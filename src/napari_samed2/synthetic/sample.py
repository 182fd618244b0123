"""What every synthetic generator returns: an image with its ground-truth instance labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SyntheticSample", "check_shape"]


@dataclass
class SyntheticSample:
    """An image with its ground-truth instance labels.

    Attributes
    ----------
    image : np.ndarray
        ``(Y, X)``, ``(Z, Y, X)`` or ``(T, Y, X)``; uint16 (fluorescence counts) or float32
        (MRI/CT-like intensities).
    labels : np.ndarray of int32
        Same shape as ``image``; 0 is background, each object keeps its id in every slice or
        frame it appears in.
    axis : int or None
        The propagation axis (0 for volumes and time-lapses), None for a 2-D image.
    kind : str
        Which generator made it (``"nuclei"``, ``"cells"``, ...).
    events : dict
        Object ids that enter, leave, split (``{daughter: parent}``) or fade; empty for 2-D.
    """

    image: np.ndarray
    labels: np.ndarray
    axis: int | None
    kind: str = ""
    events: dict[str, Any] = field(default_factory=dict)

    @property
    def object_ids(self) -> list[int]:
        return [int(i) for i in np.unique(self.labels) if i != 0]


def check_shape(shape, ndim: int, name: str) -> tuple[int, ...]:
    """``shape`` as a tuple of ``ndim`` ints, the last two at least 16.

    Raises
    ------
    TypeError
        ``shape`` is not a sequence of ints.
    ValueError
        Wrong length, or a size too small; the message names the value.
    """
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as error:
        raise TypeError(f"{name} must be a tuple of {ndim} ints, got {shape!r}") from error
    if len(shape) != ndim or min(shape) < 1 or min(shape[-2:]) < 16:
        raise ValueError(
            f"{name} must be {ndim} positive ints with the last two >= 16, got {shape!r}"
        )
    return shape
