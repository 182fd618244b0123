"""Encode a whole stack into the on-disk feature cache ahead of time (``samed2 encode``), so
that every later session on it, the GUI's included, starts without the image encoder."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..model import LoadedModel
from .disk_features import default_directory
from .feature_store import FeatureStore
from .session import PropagationSession
from .settings import SessionSettings


@dataclass(frozen=True)
class PrecomputeReport:
    """What `precompute_features` did.

    Attributes
    ----------
    frames : int
        Frames of the stack.
    encoded : int
        Frames run through the encoder (and written).
    cached : int
        Frames whose features were already in the cache.
    bytes_written : int
        Bytes of the entries written.
    kept : int
        Frames of the stack whose features are in the cache at the end: fewer than
        ``frames`` when the cache's bound is too small for the stack (the first ones were
        evicted to make room for the last).
    folder : Path
        The cache folder.
    cache_bytes, max_bytes : int
        The folder's size at the end, and its bound.
    """

    frames: int
    encoded: int
    cached: int
    bytes_written: int
    kept: int
    folder: Path
    cache_bytes: int
    max_bytes: int


def precompute_features(
    model: LoadedModel,
    data,
    axis: int = 0,
    *,
    position: Sequence[int] | None = None,
    rgb: bool | None = None,
    settings: SessionSettings | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> PrecomputeReport:
    """Encode every frame of ``data`` along ``axis`` into the on-disk feature cache.

    The frames are read as a `PropagationSession` with the same ``data``, ``axis``,
    ``position``, ``rgb`` and ``settings`` reads them (same value range, pairs, precision),
    so such a session, or the widget on the same image, finds them all. Frames already
    cached are checked and skipped.

    Parameters
    ----------
    progress : callable, optional
        ``progress(done, total, per_frame_bytes)`` after every encoder batch (frames done so
        far, frames in all, bytes of one frame's features).

    Raises
    ------
    ValueError
        If ``settings`` turn the disk cache off (``disk_cache_bytes=0``).
    StoreError
        If the cache folder cannot be one (a file is in its place); also a `ValueError`.
    """
    settings = settings or SessionSettings()
    if not settings.disk_cache_bytes:
        raise ValueError(
            "settings.disk_cache_bytes is 0 (no disk cache): there is nowhere to keep the "
            "features; give a bound in bytes > 0"
        )
    # StoreError here (a session would only log it and go on without the disk)
    FeatureStore(settings.disk_cache_dir or default_directory(), int(settings.disk_cache_bytes))
    # nothing kept in memory: every batch goes to disk and is dropped
    settings = dataclasses.replace(settings, cache_bytes=0, prefetch=False)
    session = PropagationSession(model, data, axis, settings=settings, rgb=rgb, position=position)
    encoder, disk = session.encoder, session.disk_cache
    total = session.num_frames
    groups = [encoder.group(frame) for frame in range(0, total, 2 if encoder.pairs else 1)]
    encoded = cached = 0
    try:
        for group in groups:
            calls = encoder.encoder_calls
            features = encoder.features(group[0])
            if encoder.encoder_calls > calls:
                encoded += len(group)
            else:
                cached += len(group)
            if progress is not None:
                progress(encoded + cached, total, features.nbytes)
    finally:
        session.close()  # waits for the writes
    kept = sum(len(g) for g in groups if disk.group_key(session.frames, g) in disk.store)
    store = disk.store
    return PrecomputeReport(
        frames=total,
        encoded=encoded,
        cached=cached,
        bytes_written=store.counts.bytes_written,
        kept=kept,
        folder=store.directory,
        cache_bytes=store.nbytes,
        max_bytes=store.max_bytes,
    )
