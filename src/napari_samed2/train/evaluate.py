"""Evaluation of any model on data with ground truth, through the engine, with baselines.

Suites (held-out synthetic sets, seeds from `EVAL_SEED` on, which training never draws):

- ``2d``: one positive click per object (its most interior pixel) on 2-D images, scored
  once every object is clicked (pixels claimed by two objects go to the surer one; the
  baselines get the same clicks at once).
- ``volume``: one click per object on the slice where it is largest, propagated both ways.
- ``timelapse``: one click per object on the first frame where it is well inside the field
  (at least half its largest area), tracked both ways through time.
- ``small``: 8-20 px nuclei in large fields, whole field vs the engine's automatic zoom.
- ``memory``: selective vs sam2 memory on sequences where some frames are noise or blank.
- ``real-like``: volumes built to look like real stacks: fluorescence stacks of dense tissue
  (`synthetic.tissue_volume`: nuclei that start and end between slices with neighbours above
  and below, a long axial blur, a low dynamic range on a camera offset) and T1 brain MRI
  (`synthetic.brain_volume`: white and grey matter per hemisphere meeting along folded
  boundaries, ventricles and deep grey nuclei, thick slices, bias field, Rician noise); one
  click per object on its largest slice, propagated both ways (40 objects per volume, a seeded
  choice among those at least 8 px across).

Stack suites also score each object's extent: how many slices its first and last predicted
slices are off from the truth (`metrics.extent_error`).

Every click is also given to a seeded watershed and to scikit-image's random walker. All
inference goes through `napari_samed2.engine.PropagationSession`; with ``zoom`` every suite also
scores the model with ``PropagationSession(zoom=True)`` (each object in its own region).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .. import synthetic
from ..engine import MemoryMode, PropagationSession, SessionSettings
from ..synthetic import corrupt_frames
from .baselines import random_walker_from_clicks, watershed_from_clicks
from .clips import scale_intensity
from .eval_report import (
    MODEL,
    RANDOM_WALKER,
    SUITES,
    WATERSHED,
    ZOOMED,
    EvaluationReport,
    ObjectScore,
)
from .metrics import dice, equivalent_diameter, extent_error
from .prompts import centre_click

EVAL_SEED = 10_000
SMALL_FIELDS = (512, 1024, 2048)  # field sizes of the small-object suite (one sample each)
SMALL_FIELDS_QUICK = (384,)
SMALL_MAX_OBJECTS = 40  # nuclei scored per field (a seeded choice): 2048 px hold thousands
REAL_LIKE_MAX_OBJECTS = 40  # objects scored per real-like volume (a seeded choice): a dense
# tissue volume holds hundreds of nuclei
REAL_LIKE_MIN_DIAMETER = 8.0  # pixels on the object's largest slice: no slivers at the edges


# -- held-out data ---------------------------------------------------------------------------------


@dataclass
class EvalSet:
    """Samples of one kind for one suite."""

    suite: str
    kind: str
    samples: list[synthetic.SyntheticSample]


def held_out_sets(suites: Iterable[str], quick: bool = False, seed: int = EVAL_SEED):
    """The evaluation data: seeds ``seed`` and up, one per sample.

    Training draws its generators' seeds at random from [0, 2**31) and other field sizes, so
    it meets one of these images with negligible chance. Select models on one seed (e.g.
    20000) and report them on the model card's (`EVAL_SEED`).
    """
    count = 1 if quick else 3
    sets: list[EvalSet] = []
    for suite in suites:
        base = seed + 1000 * SUITES.index(suite)
        seeds = range(base, base + count)
        if suite == "2d":
            for kind in ("nuclei", "cells", "tubes", "organs"):
                generator = synthetic.GENERATORS[kind]
                shape = (192, 192) if quick else (256, 256)
                sets.append(EvalSet(suite, kind, [generator(shape=shape, seed=s) for s in seeds]))
        elif suite == "volume":
            shape = (16, 96, 96) if quick else (24, 128, 128)
            for kind in ("nuclei-volume", "organ-volume"):
                generator = synthetic.GENERATORS[kind]
                sets.append(EvalSet(suite, kind, [generator(shape=shape, seed=s) for s in seeds]))
        elif suite == "timelapse":
            shape = (16, 96, 96) if quick else (24, 128, 128)
            samples = [synthetic.moving_cells_timelapse(shape=shape, seed=s) for s in seeds]
            sets.append(EvalSet(suite, "timelapse", samples))
        elif suite == "small":
            sizes = SMALL_FIELDS_QUICK if quick else SMALL_FIELDS
            samples = [
                synthetic.nuclei_image(shape=(size, size), seed=s, radius=(4.0, 10.0), density=0.1)
                for s, size in zip(range(base, base + len(sizes)), sizes, strict=True)
            ]
            sets.append(EvalSet(suite, "nuclei 8-20 px", samples))
        elif suite == "memory":
            shape = (16, 96, 96) if quick else (24, 128, 128)
            samples = [
                corrupt_frames(synthetic.nuclei_volume(shape=shape, seed=s), seed=s) for s in seeds
            ]
            samples += [
                corrupt_frames(
                    synthetic.moving_cells_timelapse(shape=shape, seed=s, events=False), seed=s
                )
                for s in seeds
            ]
            samples += [  # runs of consecutive bad frames
                corrupt_frames(synthetic.nuclei_volume(shape=shape, seed=s), seed=s, burst=True)
                for s in seeds
            ]
            sets.append(EvalSet(suite, "noisy/blank frames", samples))
        elif suite == "real-like":
            shape = (16, 96, 96) if quick else (32, 128, 128)
            samples = [synthetic.tissue_volume(shape=shape, seed=s) for s in seeds]
            sets.append(EvalSet(suite, "tissue-volume", samples))
            shape = (12, 96, 96) if quick else (24, 128, 128)
            samples = [synthetic.brain_volume(shape=shape, seed=s) for s in seeds]
            sets.append(EvalSet(suite, "brain-volume", samples))
        else:
            raise ValueError(f"unknown suite {suite!r}; expected one of {SUITES} or 'all'")
    return sets


# -- running ---------------------------------------------------------------------------------------


def evaluate(
    model,
    suites: Iterable[str] = SUITES,
    quick: bool = False,
    baselines: bool = True,
    seed: int = EVAL_SEED,
    progress: Callable[[str], None] | None = None,
    zoom: bool = False,
) -> EvaluationReport:
    """Evaluate ``model`` (a `LoadedModel`) on the held-out synthetic suites.

    Parameters
    ----------
    model : LoadedModel
        From `napari_samed2.model.load_model`.
    suites : iterable of str
        Some of `SUITES`.
    quick : bool
        One small sample per data kind (minutes on a laptop CPU) instead of four full ones.
    baselines : bool
        Also run the seeded watershed and the random walker on the same clicks.
    progress : callable, optional
        Called with a line of text per sample.
    zoom : bool
        Also score the model with the automatic per-object zoom (the small suite always does).
    """
    suites = list(suites)
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown suites {unknown}; expected some of {list(SUITES)}")
    report = EvaluationReport(
        model=getattr(model, "name", type(model).__name__),
        settings={
            "quick": quick,
            "seed": seed,
            "device": str(getattr(model, "device", "cpu")),
            "precision": getattr(model, "precision_text", "fp32"),
            "suites": suites,
            "zoom": zoom,
        },
    )
    for eval_set in held_out_sets(suites, quick=quick, seed=seed):
        for index, sample in enumerate(eval_set.samples):
            started = time.perf_counter()
            runner = RUNNERS[eval_set.suite]
            report.scores += runner(model, sample, eval_set.kind, index, baselines, zoom)
            if progress is not None:
                progress(
                    f"{eval_set.suite} {eval_set.kind} #{index}: "
                    f"{time.perf_counter() - started:.1f} s"
                )
    return report


def evaluate_data(
    model,
    image: np.ndarray,
    labels: np.ndarray,
    axis: int | None = None,
    baselines: bool = True,
    name: str = "data",
    zoom: bool = False,
) -> EvaluationReport:
    """Evaluate on your own image (2-D, or a stack with ``axis=0``) and instance labels.

    2-D data: one click per object; stacks: one click per object on its largest slice,
    propagated both ways.
    """
    image, labels = np.asarray(image), np.asarray(labels)
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} must have the same shape")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be 2-D or a 3-D stack, got {image.ndim} dimensions")
    if image.ndim == 3 and axis not in (0, None):
        image, labels = np.moveaxis(image, axis, 0), np.moveaxis(labels, axis, 0)
    sample = synthetic.SyntheticSample(
        image, labels.astype(np.int32), 0 if image.ndim == 3 else None
    )
    suite = "2d" if image.ndim == 2 else "volume"
    report = EvaluationReport(getattr(model, "name", "model"), settings={"data": name})
    report.scores = RUNNERS[suite](model, sample, name, 0, baselines, zoom)
    return report


def _clicks_on_frames(labels: np.ndarray, suite: str) -> dict[int, tuple[int, int, int]]:
    """Object id -> (frame, row, col) of its one click."""
    clicks = {}
    for obj_id in [int(i) for i in np.unique(labels) if i > 0]:
        mask = labels == obj_id
        areas = mask.sum(axis=(1, 2))
        if suite == "timelapse":
            frame = int(np.flatnonzero(areas >= 0.5 * areas.max())[0])
        else:
            frame = int(np.argmax(areas))
        x, y = centre_click(mask[frame]).coords[0].astype(int)
        clicks[obj_id] = (frame, int(y), int(x))
    return clicks


def _zoomed_masks(
    model, image, clicks, memory="selective", axis_kind=None
) -> dict[int, np.ndarray]:
    """Object id -> its mask (stack) from one click, each object in its own zoomed region.

    ``clicks`` maps object ids to ``(frame, row, col)``. A 2-D image is scored once all its
    objects are clicked (as `_run_2d` does); in a stack each object is propagated both ways on
    its own (as `_run_stack` does); ``axis_kind``: the stack's axis, "Z" or "T".
    """
    stack = image if image.ndim == 3 else image[None]
    session = _session(
        model, stack, memory=memory, zoom=True, motion=axis_kind == "T", axis_kind=axis_kind
    )
    masks = {}
    if image.ndim == 2:
        for obj_id, (frame, row, col) in clicks.items():
            session.add_points(frame, obj_id, [[row, col]], [1])
        masks = {obj_id: session.results[0].masks[obj_id] for obj_id in clicks}
        session.close()
        return masks
    for obj_id, (frame, row, col) in clicks.items():
        session.reset(bank=True)  # one object at a time, as in the other suites
        session.add_points(frame, obj_id, [[row, col]], [1])
        for _ in session.propagate("both"):
            pass
        mask = np.zeros(stack.shape[:3], bool)
        for frame_index, result in session.results.items():
            if obj_id in result.masks:
                mask[frame_index] = result.masks[obj_id]
        masks[obj_id] = mask
    session.close()
    return masks


def _zoom_scores(suite, kind, index, model, image, labels, clicks) -> list[ObjectScore]:
    started = time.perf_counter()
    axis_kind = None if image.ndim == 2 else "T" if suite == "timelapse" else "Z"
    masks = _zoomed_masks(model, image, clicks, axis_kind=axis_kind)
    elapsed = (time.perf_counter() - started) / max(1, len(clicks))
    valid = labels >= 0
    return [
        ObjectScore(suite, kind, index, obj_id, ZOOMED,
                    dice(masks[obj_id][valid], (labels == obj_id)[valid]),
                    equivalent_diameter(labels == obj_id), elapsed,
                    _extent(masks[obj_id], labels == obj_id))
        for obj_id in clicks
    ]  # fmt: skip


def _extent(predicted: np.ndarray, truth: np.ndarray) -> int | None:
    """`extent_error` of a stack's object; None for a 2-D image."""
    return extent_error(predicted, truth) if truth.ndim == 3 else None


def _run_2d(model, sample, kind, index, baselines, zoom=False) -> list[ObjectScore]:
    labels = sample.labels
    clicks = {}
    for obj_id in [int(i) for i in np.unique(labels) if i > 0]:
        x, y = centre_click(labels == obj_id).coords[0].astype(int)
        clicks[obj_id] = (int(y), int(x))
    scores = []
    started = time.perf_counter()
    session = _session(model, sample.image, memory="selective")
    for obj_id, (row, col) in clicks.items():
        session.add_points(0, obj_id, [[row, col]], [1])
    # scored once every object is clicked, as a user sees them (each pixel goes to one object)
    final = session.results[0].masks if clicks else {}
    for obj_id in clicks:
        truth = labels == obj_id
        scores.append(
            ObjectScore("2d", kind, index, obj_id, MODEL, dice(final[obj_id], truth),
                        equivalent_diameter(truth))
        )  # fmt: skip
    session.close()
    elapsed = (time.perf_counter() - started) / max(1, len(clicks))
    for score in scores:
        score.seconds = elapsed
    if zoom:
        framed = {obj_id: (0, row, col) for obj_id, (row, col) in clicks.items()}
        scores += _zoom_scores("2d", kind, index, model, sample.image, labels, framed)
    if baselines:
        scores += _baselines("2d", kind, index, sample.image, labels, clicks)
    return scores


def _baselines(suite, kind, index, image, labels, clicks, scored=None) -> list[ObjectScore]:
    scaled = scale_intensity(image)
    scores = []
    for method, function in (
        (WATERSHED, watershed_from_clicks),
        (RANDOM_WALKER, random_walker_from_clicks),
    ):
        started = time.perf_counter()
        masks = function(scaled, clicks)
        elapsed = (time.perf_counter() - started) / max(1, len(clicks))
        for obj_id, mask in masks.items():
            truth = labels == obj_id
            valid = labels >= 0 if scored is None else scored
            scores.append(
                ObjectScore(suite, kind, index, obj_id, method, dice(mask[valid], truth[valid]),
                            equivalent_diameter(truth), elapsed, _extent(mask, truth))
            )  # fmt: skip
    return scores


def _run_stack(model, sample, kind, index, baselines, suite, memory="selective", zoom=False):
    labels = sample.labels
    clicks = _clicks_on_frames(np.where(labels > 0, labels, 0), suite)
    if suite == "real-like":
        clicks = _real_like_choice(clicks, labels, index)
    if not clicks:
        return []
    started = time.perf_counter()
    # a time-lapse is tracked as the widget tracks one (its T axis): the mask follows motion
    axis_kind = "T" if sample.kind == "timelapse" else "Z"
    session = _session(
        model, sample.image, memory=memory, motion=axis_kind == "T", axis_kind=axis_kind
    )
    predicted = {}
    # One object at a time, as a user prompts it: the session keeps the encoded frames between
    # objects, and the reset (bank included) keeps one object's memories out of another's.
    for obj_id, (frame, row, col) in clicks.items():
        session.reset(bank=True)
        session.add_points(frame, obj_id, [[row, col]], [1])
        for _ in session.propagate(direction="both"):
            pass
        mask = np.zeros(labels.shape, bool)
        for frame_index, result in session.results.items():
            if obj_id in result.masks:
                mask[frame_index] = result.masks[obj_id]
        predicted[obj_id] = mask
    session.close()
    elapsed = (time.perf_counter() - started) / max(1, len(clicks))
    valid = labels >= 0
    method = MODEL if suite != "memory" else f"{MODEL} ({memory} memory)"
    scores = [
        ObjectScore(suite, kind, index, obj_id, method,
                    dice(predicted[obj_id][valid], (labels == obj_id)[valid]),
                    equivalent_diameter(labels == obj_id), elapsed,
                    extent_error(predicted[obj_id], labels == obj_id))
        for obj_id in clicks
    ]  # fmt: skip
    if zoom and suite != "memory":
        scores += _zoom_scores(suite, kind, index, model, sample.image, labels, clicks)
    if baselines and suite != "memory":
        scores += _baselines(suite, kind, index, sample.image, labels, clicks)
    return scores


def _real_like_choice(clicks: dict, labels: np.ndarray, index: int) -> dict:
    """At most `REAL_LIKE_MAX_OBJECTS` of ``clicks`` (a seeded choice among the objects at
    least `REAL_LIKE_MIN_DIAMETER` across), in id order."""
    ids = [i for i in clicks if equivalent_diameter(labels == i) >= REAL_LIKE_MIN_DIAMETER]
    if len(ids) > REAL_LIKE_MAX_OBJECTS:
        rng = np.random.default_rng([EVAL_SEED, index, labels.shape[0]])
        ids = sorted(int(i) for i in rng.choice(ids, REAL_LIKE_MAX_OBJECTS, replace=False))
    return {i: clicks[i] for i in ids}


def _run_volume(model, sample, kind, index, baselines, zoom=False):
    return _run_stack(model, sample, kind, index, baselines, "volume", zoom=zoom)


def _run_timelapse(model, sample, kind, index, baselines, zoom=False):
    return _run_stack(model, sample, kind, index, baselines, "timelapse", zoom=zoom)


def _run_real_like(model, sample, kind, index, baselines, zoom=False):
    return _run_stack(model, sample, kind, index, baselines, "real-like", zoom=zoom)


def _run_memory(model, sample, kind, index, baselines, zoom=False):
    scores = []
    for memory in MemoryMode:
        scores += _run_stack(model, sample, kind, index, False, "memory", memory=memory.value)
    return scores


def _run_small(model, sample, kind, index, baselines, zoom=True) -> list[ObjectScore]:
    """Whole-field clicks vs the engine's automatic zoom (always both)."""
    labels = sample.labels
    areas = np.bincount(labels.ravel().clip(min=0))
    diameters = 2.0 * np.sqrt(areas / np.pi)  # as metrics.equivalent_diameter, for all at once
    ids = [i for i in range(1, len(areas)) if 8 <= diameters[i] < 20]
    if len(ids) > SMALL_MAX_OBJECTS:
        rng = np.random.default_rng([EVAL_SEED, index, labels.shape[0]])
        ids = sorted(int(i) for i in rng.choice(ids, SMALL_MAX_OBJECTS, replace=False))
    truths = {i: labels == i for i in ids}
    scores = []
    session = _session(model, sample.image, memory="selective")
    clicks = {}
    for obj_id in ids:
        x, y = centre_click(truths[obj_id]).coords[0].astype(int)
        clicks[obj_id] = (int(y), int(x))
        result = session.add_points(0, obj_id, [[y, x]], [1])
        scores.append(
            ObjectScore("small", kind, index, obj_id, f"{MODEL} (whole field)",
                        dice(result.masks[obj_id], truths[obj_id]),
                        equivalent_diameter(truths[obj_id]))
        )  # fmt: skip
    session.close()
    framed = {obj_id: (0, row, col) for obj_id, (row, col) in clicks.items()}
    scores += _zoom_scores("small", kind, index, model, sample.image, labels, framed)
    if baselines and clicks:
        scores += _baselines("small", kind, index, sample.image, labels, clicks)
    return scores


RUNNERS = {
    "2d": _run_2d,
    "volume": _run_volume,
    "timelapse": _run_timelapse,
    "small": _run_small,
    "memory": _run_memory,
    "real-like": _run_real_like,
}


def _session(model, image, axis_kind=None, **choices) -> PropagationSession:
    """A session on a synthetic stack (its axis a depth "Z" or time "T" axis, or None for a
    2-D image), without the on-disk feature cache: evaluation stacks are seen once, and would
    evict the user's stacks from it."""
    return PropagationSession(
        model, image, axis=0, axis_kind=axis_kind, settings=SessionSettings(disk_cache_bytes=0),
        **choices,
    )  # fmt: skip
