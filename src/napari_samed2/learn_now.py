"""Learn from my corrections, now: fine-tune the open model on one image's label-set entries
for a short budget, swap the new weights into the running session and re-propagate.

The same loop serves the annotator's "Learn from my corrections" button, scripts and the
effort benchmark (``benchmarks/learn_now_effort.py``). Training is `train.finetune` on a view
of the label set holding only the entries of one source (the image); with ``train="decoder"``
the image encoder is frozen, so the new weights are loaded into the session's network in
place and its cached frame features stay valid. What the session had learned from the old
weights (memories of prompted frames, the long-term bank) is not: `replay_confirmed` forgets
it and gives the confirmed masks again, then propagates.

The frames the user prompted or accepted in the session but did not add to the set train too
(`confirmed_entries`): a correction saying "absent here" teaches the object score only in a
clip that starts where the object is present, and that frame is often only in the session.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .model import REGISTRY, LoadedModel

__all__ = [
    "LEARN_NOW_SECONDS",
    "ConfirmedFrame",
    "LearnNowResult",
    "SourceEntries",
    "base_reference",
    "confirmed_entries",
    "confirmed_masks",
    "import_training_modules",
    "learn_from_corrections",
    "learn_now",
    "replay_confirmed",
    "swap_weights",
]

LEARN_NOW_SECONDS = 30.0  # the default budget: tens of seconds on a CPU for the nano model


class SourceEntries:
    """A label set seen through one source: `entries` lists only the entries whose source
    ``name`` is ``name`` (all when None), then ``extra`` (frames not in the set, such as
    `ConfirmedFrame`). What `train.finetune` reads of a set, nothing else."""

    def __init__(self, labelset, name: str | None, extra: Sequence = ()) -> None:
        self.labelset = labelset
        self.source_name = name
        self.extra = list(extra)
        self.path = labelset.path
        self.name = labelset.name
        self.version = labelset.version
        self.manifest = labelset.manifest

    def entries(self) -> list:
        return self.stored() + self.extra

    def stored(self) -> list:
        """The set's own entries of the source."""
        entries = self.labelset.entries()
        if self.source_name is None:
            return entries
        return [e for e in entries if e.source.get("name") == self.source_name]


@dataclass
class ConfirmedFrame:
    """A frame the user prompted or accepted in the session, read by `train.read_labelset` as
    a label-set entry that is not stored: the confirmed objects' masks, those objects listed,
    not complete (other objects there are unknown), no stored prompts (clicks are sampled).

    Attributes
    ----------
    id : int
        Above every stored entry's id (training orders and names entries by id).
    frame : int
        The frame along the source's axis.
    source : dict
        The stored entries' source, with this ``frame``.
    pixels : np.ndarray
        ``(Y, X)`` or ``(Y, X, C)`` the frame in the image's dtype.
    label_image : np.ndarray
        ``(Y, X)`` uint32: each confirmed object's id on its mask.
    object_ids : list of int
        The objects confirmed on this frame (present or absent).
    """

    id: int
    frame: int
    source: dict[str, Any]
    pixels: np.ndarray
    label_image: np.ndarray
    object_ids: list[int]
    complete: bool = False
    objects: tuple = ()

    def image(self) -> np.ndarray:
        return self.pixels

    def labels(self) -> np.ndarray:
        return self.label_image


def confirmed_entries(session, labelset, source: str | None) -> list[ConfirmedFrame]:
    """The session's confirmed frames (`confirmed_masks`) that ``labelset`` has no entry of,
    as `ConfirmedFrame` s of the source of its latest entry named ``source``; none when the
    set has no such entry. Copies: the session may change while training reads them."""
    stored = SourceEntries(labelset, source).stored()
    if not stored:
        return []
    template = stored[-1].source
    key = _place(template)
    known = {e.frame for e in stored if _place(e.source) == key}
    by_frame: dict[int, dict[int, np.ndarray]] = {}
    for obj_id, masks in confirmed_masks(session).items():
        for frame, mask in masks.items():
            if frame not in known:
                by_frame.setdefault(frame, {})[obj_id] = mask
    next_id = max(e.id for e in labelset.entries()) + 1
    frames = []
    for index, frame in enumerate(sorted(by_frame)):
        objects = by_frame[frame]
        labels = np.zeros(next(iter(objects.values())).shape, np.uint32)
        for obj_id in sorted(objects):
            labels[objects[obj_id]] = obj_id
        frames.append(
            ConfirmedFrame(
                id=next_id + index,
                frame=frame,
                source={**template, "frame": frame},
                pixels=np.array(session.frames.read(frame, whole=True), copy=True),
                label_image=labels,
                object_ids=sorted(objects),
            )
        )
    return frames


@dataclass
class LearnNowResult:
    """What one learn-now did: the fine-tune (`train.FinetuneResult`), the checkpoint
    written, the set's entries and the session's confirmed frames it trained on, and (after
    `learn_now`) the frames re-propagated."""

    finetune: Any
    path: Path | None
    entries: int
    frames: int = 0
    confirmed: int = 0  # the session's confirmed frames not in the set


def base_reference(model: LoadedModel, folder: str | os.PathLike) -> str | Path:
    """What `finetune` can load as ``model``: its checkpoint file, its registry name, or
    (a network built in memory) a checkpoint written to ``folder`` now."""
    if model.source is not None and Path(model.source).is_file():
        return Path(model.source)
    if model.name in REGISTRY:
        return model.name
    from .model import save_checkpoint

    path = Path(folder) / f"{model.name}-base-{_stamp()}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(
        path,
        model.net,
        config=model.config,
        temporal_adapter=model.temporal_adapter,
        preprocessing=model.preprocessing,
        name=model.name,
    )


def import_training_modules() -> None:
    """Import what training needs (torch._dynamo, which torch's optimizers import on first
    use, and `train.finetune`) before a worker trains; the GUI calls it in its own thread.
    In a process that drew napari with Mesa's software OpenGL, triton is kept out first
    (`train.triton_guard`): importing it there crashes the process."""
    from .train.triton_guard import guard_triton_import

    guard_triton_import()
    import torch._dynamo  # noqa: F401

    from .train import finetune  # noqa: F401


def learn_from_corrections(
    model: LoadedModel,
    labelset,
    *,
    source: str | None = None,
    confirmed: Sequence[ConfirmedFrame] = (),
    seconds: float = LEARN_NOW_SECONDS,
    steps: int | None = None,
    train: str = "decoder",
    out: str | os.PathLike | None = None,
    device: str | None = None,
    seed: int = 0,
    progress: Callable | None = None,
    stop=None,
    settings=None,
) -> LearnNowResult:
    """Fine-tune ``model`` on the entries of ``source`` in ``labelset`` (no held-out split:
    a handful of corrections is all there is; the last weights are kept).

    Parameters
    ----------
    model : LoadedModel
        The model in use; not changed (the fine-tune loads its own copy). Call
        `swap_weights` to put the result into it.
    labelset : LabelSet or path
    source : str, optional
        The image (source ``name``) whose entries to train on; None: every entry.
    confirmed : sequence of ConfirmedFrame
        Frames of that image confirmed in the session but not in the set
        (`confirmed_entries`), trained on beside its entries.
    seconds, steps : optional
        Budget; the first reached ends the run.
    train : {"decoder", "adapters", "all"}
        Only ``"decoder"`` keeps cached features valid (the image encoder frozen).
    out : path, optional
        The new checkpoint (default: ``learn-now/`` in the weights cache, a fresh name).
    device : str, optional
        Default: ``model``'s device.

    Raises
    ------
    FinetuneDataError
        No entry of ``source`` in the set.
    """
    from .model import cache_dir
    from .train.finetune import finetune

    import_training_modules()
    if not hasattr(labelset, "entries"):
        from .labelset import LabelSet

        labelset = LabelSet.open(labelset)
    view = SourceEntries(labelset, source, confirmed)
    entries = view.stored()
    if not entries:
        from .train.labelset_data import FinetuneDataError

        known = sorted({str(e.source.get("name")) for e in labelset.entries()})
        raise FinetuneDataError(
            f"label set {str(labelset.path)!r} has no entry of image {source!r} (its images: "
            f"{known or 'none'}); add this image's frames or turn autosave on first"
        )
    folder = Path(cache_dir()) / "learn-now"
    out = Path(out) if out is not None else folder / f"{_stem(model.name)}-{_stamp()}.safetensors"
    device = device or str(model.device)
    with tempfile.TemporaryDirectory(prefix="samed2-learn-now-") as scratch:
        base = base_reference(model, scratch)
        result = finetune(
            view,
            base,
            out,
            minutes=None if seconds is None else seconds / 60.0,
            steps=steps,
            train=train,
            device=device,
            holdout=0.0,
            seed=seed,
            progress=progress,
            stop=stop,
            settings=settings,
        )
    return LearnNowResult(result, result.path, len(entries), confirmed=len(view.extra))


def swap_weights(
    model: LoadedModel, tuned: LoadedModel, path: str | os.PathLike | None = None
) -> None:
    """Load ``tuned``'s weights into ``model.net`` in place (every session using that network
    sees them at once); ``model`` takes the name and file of ``path`` (the checkpoint the
    weights were written to), else ``tuned``'s, for provenance.

    Raises
    ------
    ValueError
        The networks do not match (another architecture).
    """
    state = tuned.net.state_dict()
    mine = model.net.state_dict()
    missing = sorted(set(mine) ^ set(state))
    if missing or any(mine[k].shape != state[k].shape for k in mine):
        raise ValueError(
            f"the tuned network does not match {model.name!r}: parameters differ "
            f"({', '.join(missing[:3]) or 'shapes'})"
        )
    model.net.load_state_dict(state)
    model.net.eval()
    if path is not None:
        model.name, model.source = Path(path).stem, Path(path)
    else:
        model.name, model.source = tuned.name, tuned.source


def confirmed_masks(session) -> dict[int, dict[int, np.ndarray]]:
    """Object id to {frame: mask} on the frames the user prompted or corrected, as the
    session holds them."""
    masks: dict[int, dict[int, np.ndarray]] = {}
    for obj_id, frames in session.confirmed_frames.items():
        for frame in frames:
            result = session.results.get(frame)
            if result is not None and obj_id in result.masks:
                masks.setdefault(obj_id, {})[frame] = np.asarray(result.masks[obj_id], bool)
    return masks


def replay_calls(session, masks: Mapping[int, Mapping[int, np.ndarray]]) -> list[Callable]:
    """The engine calls that give ``session`` the confirmed ``masks`` again: per object, its
    first non-empty mask as a mask prompt, the others (empty ones too: absent) as corrections."""
    calls = []
    for obj_id in sorted(masks):
        frames = sorted(masks[obj_id])
        first = next((f for f in frames if np.any(masks[obj_id][f])), None)
        if first is None:
            continue  # absent everywhere it was confirmed: nothing to prompt it from
        calls.append(_bind(session.add_mask, first, obj_id, masks[obj_id][first]))
        calls += [_bind(session.correct, f, obj_id, masks[obj_id][f]) for f in frames if f != first]
    return calls


def replay_confirmed(
    session, masks: Mapping[int, Mapping[int, np.ndarray]], direction: str = "both"
) -> Iterable:
    """Forget what ``session`` learned (objects, memories, bank; cached features stay), give
    it the confirmed ``masks`` again and propagate; yields each propagated `FrameResult`.

    Propagation starts on the earliest frame where a confirmed object is present, not on an
    earlier frame confirmed empty: tracking from "absent" would lose the objects on the frames
    up to the next confirmed mask."""
    session.reset(bank=True)
    calls = replay_calls(session, masks)
    if not calls:
        return
    for call in calls:
        call()
    present = [f for frames in masks.values() for f, mask in frames.items() if np.any(mask)]
    yield from session.propagate(direction, start=min(present) if direction == "both" else None)


def learn_now(
    session, model: LoadedModel, labelset, *, source: str | None = None, **options
) -> LearnNowResult:
    """`learn_from_corrections`, `swap_weights` into ``session`` and `replay_confirmed`: the
    whole loop of the annotator's button, headless. ``options`` go to
    `learn_from_corrections`; the session's confirmed frames train too (`confirmed_entries`).
    ``session`` must run on ``model``'s network."""
    if session.net is not model.net:
        raise ValueError("the session does not run on this model's network")
    masks = confirmed_masks(session)
    if not hasattr(labelset, "entries"):
        from .labelset import LabelSet

        labelset = LabelSet.open(labelset)
    confirmed = confirmed_entries(session, labelset, source)
    result = learn_from_corrections(model, labelset, source=source, confirmed=confirmed, **options)
    swap_weights(model, result.finetune.model, result.path)
    result.frames = sum(1 for _ in replay_confirmed(session, masks))
    return result


def _bind(function, *args):
    def call():
        return function(*args)

    return call


def _place(source: dict[str, Any]) -> tuple:
    """What makes frames one stack in training (`labelset.format.source_key`)."""
    from .labelset.format import source_key

    return source_key(source)


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def _stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "model"
