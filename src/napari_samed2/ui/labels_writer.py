"""Write model masks into a napari Labels layer: other labels untouched, one undo step per run.

During a propagation run each frame is written at once (the user watches it advance) straight
into the layer's array, and the frame's previous content is remembered. When the run ends, the
frames are put back and the same changes are replayed with ``data_setitem`` inside
``block_history``: napari then records the whole run as ONE history item, so Ctrl-Z restores
the labels exactly as they were before the run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager

import numpy as np
from napari.layers import Labels

from .frames import FrameGeometry


def merge_object(region: np.ndarray, obj_id: int, mask: np.ndarray) -> np.ndarray:
    """A frame of labels with ``obj_id`` replaced by ``mask``.

    Parameters
    ----------
    region : ndarray of int, shape (Y, X)
        The Labels layer's frame.
    obj_id : int
        The object's label id.
    mask : ndarray of bool, shape (Y, X)
        The object's new mask.

    Returns
    -------
    ndarray, same shape and dtype as ``region``
        ``obj_id`` pixels outside ``mask`` become background; background pixels inside
        ``mask`` become ``obj_id``; pixels of every other label are kept.
    """
    if mask.shape != region.shape:
        raise ValueError(f"mask shape {mask.shape} does not match the frame shape {region.shape}")
    merged = region.copy()
    merged[(region == obj_id) & ~mask] = 0
    merged[mask & (region == 0)] = obj_id
    return merged


def merge_objects(
    region: np.ndarray, masks: dict[int, np.ndarray], takes_from: Collection[int] = ()
) -> np.ndarray:
    """`merge_object` for several objects at once: all of them first give up the pixels
    outside their new masks, then each takes the background inside its mask. Pixels one
    object gives up and another's new mask covers go to the other (in any order).

    ``takes_from`` names labels whose pixels the new masks may take too: the engine's other
    objects, when it has already decided (by mask logit) which object owns each pixel.
    Every other label keeps its pixels.
    """
    merged = region.copy()
    checked = {}
    for obj_id, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != region.shape:
            raise ValueError(
                f"mask shape {mask.shape} of object {obj_id} does not match the frame shape "
                f"{region.shape}"
            )
        checked[int(obj_id)] = mask
        merged[(region == obj_id) & ~mask] = 0
    free = merged == 0
    yielding = [int(i) for i in takes_from if int(i) not in checked]
    if yielding:
        free |= np.isin(merged, yielding)
    for obj_id, mask in checked.items():
        taken = mask & free
        merged[taken] = obj_id
        free &= ~taken
    return merged


class LabelsWriter:
    """Writes masks into one Labels layer and tells its own writes apart from the user's.

    ``writing`` is True while the writer changes the layer, so a ``events.paint`` handler can
    ignore the history events these writes cause.
    """

    def __init__(self, layer: Labels, geometry: FrameGeometry) -> None:
        self.layer = layer
        self.geometry = geometry
        self.writing = False
        self._before: dict[int, np.ndarray] = {}
        self._run_open = False

    @contextmanager
    def _own_writes(self) -> Iterator[None]:
        previous, self.writing = self.writing, True
        try:
            yield
        finally:
            self.writing = previous

    def frame(self, frame: int) -> np.ndarray:
        """A copy of the layer's 2-D frame."""
        return np.array(self.layer.data[self.geometry.frame_index(frame)], copy=True)

    def write_step(self, frame: int, masks: dict[int, np.ndarray]) -> bool:
        """Write ``masks`` ({obj_id: bool (Y, X)}) into ``frame`` as one undo step now."""
        region = self.frame(frame)
        merged = merge_objects(region, masks)
        return self._commit({frame: region}, {frame: merged})

    def erase_object(self, obj_id: int) -> bool:
        """Remove every pixel of ``obj_id`` inside this geometry's frames, as one undo step."""
        data = self.layer.data
        frames = self._frames()
        before, after = {}, {}
        for frame in frames:
            region = np.asarray(data[self.geometry.frame_index(frame)])
            if np.any(region == obj_id):
                before[frame] = region.copy()
                after[frame] = np.where(region == obj_id, 0, region).astype(region.dtype)
        return self._commit(before, after)

    def _frames(self) -> range:
        if self.geometry.frame_axis is None:
            return range(1)
        return range(self.layer.data.shape[self.geometry.frame_axis])

    # -- a run: many frames, one undo step ---------------------------------------------------

    def begin_run(self) -> None:
        """Start collecting frames written by a propagation run."""
        self._before = {}
        self._run_open = True

    @property
    def run_open(self) -> bool:
        return self._run_open

    def write_run_frame(
        self,
        frame: int,
        masks: dict[int, np.ndarray],
        refresh: bool = True,
        takes_from: Collection[int] = (),
    ) -> None:
        """Write one propagated frame now; it joins the run's single undo step.

        ``takes_from``: labels whose pixels ``masks`` may take (`merge_objects`).

        ``refresh=False`` skips redrawing: right for a frame the viewer does not show (napari
        reads the new data when the user goes there), and it keeps the canvas from repainting
        once per frame.
        """
        if not self._run_open:
            raise RuntimeError("write_run_frame outside a run: call begin_run first")
        index = self.geometry.frame_index(frame)
        region = self.frame(frame)
        self._before.setdefault(frame, region)
        merged = merge_objects(region, masks, takes_from)
        if np.array_equal(merged, region):
            return
        with self._own_writes():
            self.layer.data[index] = merged
            if refresh:
                self.layer.refresh()

    def end_run(self) -> bool:
        """Close the run: record everything it wrote as one undo step. Returns True if changed."""
        if not self._run_open:
            return False
        self._run_open = False
        before, self._before = self._before, {}
        after = {frame: self.frame(frame) for frame in before}
        with self._own_writes():
            # put the frames back so data_setitem sees (and records) the run's changes
            for frame, region in before.items():
                self.layer.data[self.geometry.frame_index(frame)] = region
        return self._commit(before, after)

    def _commit(self, before: dict[int, np.ndarray], after: dict[int, np.ndarray]) -> bool:
        changes = []
        for frame, old in before.items():
            new = after[frame]
            rows, cols = np.nonzero(old != new)
            if rows.size:
                changes.append((self.geometry.full_indices(frame, rows, cols), new[rows, cols]))
        if not changes:
            return False
        with self._own_writes(), self.layer.block_history():
            for indices, values in changes:
                self.layer.data_setitem(indices, values, refresh=False)
        self.layer.refresh()
        return True
