"""A label set read for fine-tuning: frames grouped by source, its objects, the held-out split.

Entries of one source (same kind, name, path, axis and position; the rule of
`LabelSet.summary`) form a stack ordered by frame. An object of a source is known on a frame
when the frame lists it or is complete (then it is absent where its mask is empty): frames
where it is present train prompts and propagation, complete frames without it train the object
score. The split holds out whole objects of a source, so no object has frames on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..labelset.format import SOURCE_FIELDS, source_key


class FinetuneDataError(ValueError):
    """A label set that cannot be fine-tuned on as asked (empty, no held-out objects, ...)."""


@dataclass
class SourceFrames:
    """The entries of one source, ordered by frame.

    Attributes
    ----------
    key : tuple
        The source (`SOURCE_FIELDS`).
    entry_ids, frames : list of int
        The entries and their frame numbers along the source's axis (None for 2-D sources).
    images : np.ndarray
        ``(F, Y, X)`` or ``(F, Y, X, C)`` the frames in their original dtype.
    labels : np.ndarray
        ``(F, Y, X)`` label images.
    complete : list of bool
        Whether each frame is complete.
    listed : list of set of int
        The object ids each frame lists.
    prompts : list of dict
        Per frame, object id -> its stored prompts (`labelset.ObjectRecord.prompts`).
    """

    key: tuple
    entry_ids: list[int]
    frames: list[int | None]
    images: np.ndarray
    labels: np.ndarray
    complete: list[bool]
    listed: list[set[int]]
    prompts: list[dict[int, dict[str, Any]]]

    @property
    def rgb(self) -> bool:
        return self.images.ndim == 4


@dataclass
class SourceObject:
    """One object of one source (the unit of the held-out split).

    Attributes
    ----------
    source : int
        Index into `LabelSetData.sources`.
    obj_id : int
        Its label id.
    known : list of int
        Positions (into the source's frames) where its mask is known, ascending.
    present : list of int
        Those where it is visible.
    """

    source: int
    obj_id: int
    known: list[int]
    present: list[int]
    known_set: set[int] = field(default_factory=set, repr=False)
    present_set: set[int] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.known_set, self.present_set = set(self.known), set(self.present)


@dataclass
class LabelSetData:
    """A label set's frames by source, its objects, and which objects are held out.

    Attributes
    ----------
    sources : list of SourceFrames
    objects : list of SourceObject
        Objects visible on at least one frame, sorted by source and id.
    train, heldout : list of int
        Indices into ``objects``.
    path : str or None
        The label set's folder.
    version : int or None
        Its format version.
    entries : int
        How many entries it has.
    """

    sources: list[SourceFrames]
    objects: list[SourceObject]
    train: list[int]
    heldout: list[int]
    path: str | None = None
    version: int | None = None
    entries: int = 0

    def summary(self) -> dict[str, int]:
        """Counts of the split (for the model card)."""

        def frames_of(indices: list[int]) -> int:
            objects = [self.objects[i] for i in indices]
            return len({(obj.source, k) for obj in objects for k in obj.known})

        return {
            "sources": len(self.sources),
            "objects": len(self.objects),
            "train_objects": len(self.train),
            "heldout_objects": len(self.heldout),
            "train_frames": frames_of(self.train),
            "heldout_frames": frames_of(self.heldout),
        }


def read_labelset(labelset, holdout: float = 0.2, seed: int = 0) -> LabelSetData:
    """Read a label set's entries into `LabelSetData` and split its objects.

    Parameters
    ----------
    labelset : LabelSet
        An open label set (`napari_samed2.labelset.LabelSet`).
    holdout : float
        Fraction of the objects held out for evaluation, in [0, 1). The split draws whole
        objects of a source (all their frames), deterministically from ``seed``.
    seed : int
        Seed of the split.

    Raises
    ------
    FinetuneDataError
        An empty set, a set without objects, or a split that leaves no held-out object (with
        ``holdout > 0``) or nothing to train.
    ValueError
        ``holdout`` out of range, or frames of one source with different shapes.
    """
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    where = str(getattr(labelset, "path", "the label set"))
    entries = labelset.entries()
    if not entries:
        raise FinetuneDataError(
            f"label set {where!r} is empty: add labelled frames first (samed2 labelset import, "
            "or 'Add this frame' in the annotator)"
        )
    grouped: dict[tuple, dict[Any, Any]] = {}
    for entry in entries:  # ascending ids: a frame added again replaces the earlier entry
        frame = entry.frame if entry.frame is not None else f"entry {entry.id}"
        grouped.setdefault(source_key(entry.source), {})[frame] = entry
    sources = [_read_source(key, frames) for key, frames in grouped.items()]
    objects = [obj for index, source in enumerate(sources) for obj in _objects(index, source)]
    if not objects:
        raise FinetuneDataError(
            f"label set {where!r} has {len(entries)} entries but no labelled object on them"
        )
    train, heldout = split_objects(objects, sources, holdout, seed, where, len(entries))
    version = getattr(labelset, "version", None)
    return LabelSetData(
        sources,
        objects,
        train,
        heldout,
        path=str(Path(labelset.path).resolve()) if hasattr(labelset, "path") else None,
        version=version,
        entries=len(entries),
    )


def _read_source(key: tuple, by_frame: dict[Any, Any]) -> SourceFrames:
    def order(item):
        frame, entry = item
        return (0, frame, entry.id) if isinstance(frame, int) else (1, 0, entry.id)

    chosen = [entry for _, entry in sorted(by_frame.items(), key=order)]
    images, labels = [], []
    for entry in chosen:
        image, label = entry.image(), entry.labels()
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(
                f"entry {entry.id}: image of shape {image.shape}; fine-tuning accepts (rows, "
                "cols) or (rows, cols, 3 or 4 channels)"
            )
        if label.shape != image.shape[:2]:
            raise ValueError(
                f"entry {entry.id}: labels of shape {label.shape} do not match its image "
                f"{image.shape[:2]}"
            )
        if images and (image.shape != images[0].shape or image.dtype != images[0].dtype):
            raise ValueError(
                f"entries {chosen[0].id} and {entry.id} come from one source ({_describe(key)}) "
                f"but their frames differ: {images[0].shape} {images[0].dtype} vs "
                f"{image.shape} {image.dtype}; frames of one source must share shape and dtype"
            )
        images.append(image)
        labels.append(label.astype(np.int64))
    return SourceFrames(
        key=key,
        entry_ids=[e.id for e in chosen],
        frames=[e.frame for e in chosen],
        images=np.stack(images),
        labels=np.stack(labels),
        complete=[bool(e.complete) for e in chosen],
        listed=[set(e.object_ids) for e in chosen],
        prompts=[{o.id: o.prompts for o in e.objects if o.prompts} for e in chosen],
    )


def _describe(key: tuple) -> str:
    return ", ".join(f"{name} {value!r}" for name, value in zip(SOURCE_FIELDS, key, strict=True))


def _objects(index: int, source: SourceFrames) -> list[SourceObject]:
    ids = set().union(*source.listed) | {int(i) for i in np.unique(source.labels) if i > 0}
    objects = []
    for obj_id in sorted(ids):
        known, present = [], []
        for position, frame_labels in enumerate(source.labels):
            visible = bool((frame_labels == obj_id).any())
            if visible or source.complete[position] or obj_id in source.listed[position]:
                known.append(position)
            if visible:
                present.append(position)
        if present:
            objects.append(SourceObject(index, obj_id, known, present))
    return objects


def split_objects(
    objects: list[SourceObject],
    sources: list[SourceFrames],
    holdout: float,
    seed: int,
    where: str = "the label set",
    entries: int = 0,
) -> tuple[list[int], list[int]]:
    """Indices of the training and held-out objects: ``round(holdout * N)`` objects held out,
    chosen by ``seed`` (the same on every rank of a distributed run)."""
    count = len(objects)
    held = int(np.floor(holdout * count + 0.5))
    if holdout > 0 and held == 0:
        raise FinetuneDataError(
            f"label set {where!r} has {count} object(s) on {entries} entries: a held-out "
            f"fraction of {holdout} holds out none, so the fine-tuned model cannot be compared "
            "with the base; add entries with more objects, or pass holdout=0 (--holdout 0) to "
            "train on everything without a held-out Dice"
        )
    if held >= count:
        raise FinetuneDataError(
            f"label set {where!r} has {count} object(s): a held-out fraction of {holdout} "
            "leaves none to train on; lower holdout or add entries"
        )
    order = sorted(
        range(count),
        key=lambda i: (repr(sources[objects[i].source].key), objects[i].obj_id),
    )
    permuted = [order[i] for i in np.random.default_rng(seed).permutation(count)]
    return sorted(permuted[held:]), sorted(permuted[:held])
