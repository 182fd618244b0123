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

from ..labelset.merge import merge_objects
from .frames import FrameGeometry


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
