"""Frame sources and feature encoders per region: the session's view and each object's zoom,
all reading the same data and sharing one feature cache in memory and one on disk."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from sam2.modeling.sam2_base import SAM2Base

from ..model import has_temporal_adapter
from .disk_features import DiskFeatures, default_directory
from .feature_store import FeatureStore, StoreError
from .features import CacheView, FeatureCache, FrameEncoder
from .frames import FrameSource, ModelInput
from .settings import SessionSettings
from .tracking import ObjectTrack

logger = logging.getLogger(__name__)

Region = tuple[int, int, int, int]  # (row0, col0, row1, col1)


class RegionEncoders:
    """The session's frames and encoder, and one frame source and encoder per zoom region.

    Parameters
    ----------
    net : SAM2Base
    model_input : ModelInput
        How frames are fed to ``net``.
    device, dtype
        Where and in which precision the encoders run.
    settings : SessionSettings
        Percentiles, cache sizes (memory and disk), pair encoding and prefetch.
    source : dict
        ``data``, ``axis``, ``rgb`` and ``position`` for every `FrameSource`.
    region : (row0, col0, row1, col1) or None
        The session's view (None: whole frames).
    """

    def __init__(
        self,
        net: SAM2Base,
        model_input: ModelInput,
        *,
        device: torch.device,
        dtype: torch.dtype,
        settings: SessionSettings,
        source: dict,
        region,
    ):
        self.net = net
        self.model_input = model_input
        self.device, self.dtype = device, dtype
        self.settings = settings
        self._source = source
        self.sources: list[FrameSource] = []  # the session's and the zooms'
        self.pairs = settings.pair_encoding or has_temporal_adapter(net)
        self.disk: DiskFeatures | None = None
        if settings.disk_cache_bytes:
            folder = settings.disk_cache_dir or default_directory()
            try:
                store = FeatureStore(folder, int(settings.disk_cache_bytes))
            except StoreError as error:  # only a cache: segmenting goes on without it
                logger.warning("no disk cache of features this session: %s", error)
            else:
                self.disk = DiskFeatures(
                    store, net, model_input, device=device, dtype=dtype, pairs=self.pairs
                )
        self.frames = self.frame_source(region)
        self.cache = FeatureCache(settings.cache_bytes)
        self.encoder = self.frame_encoder(self.frames, self.cache)
        self.zooms: dict[Region, FrameEncoder] = {}

    def frame_source(self, region, value_range=None) -> FrameSource:
        source = self._source
        frames = FrameSource(
            source["data"],
            source["axis"],
            rgb=source["rgb"],
            position=source["position"],
            percentiles=self.settings.percentiles,
            region=region,
            value_range=value_range,
        )
        self.sources.append(frames)
        return frames

    def frame_encoder(self, frames: FrameSource, cache) -> FrameEncoder:
        return FrameEncoder(
            self.net,
            load=lambda frame: frames.model_input(frame, self.model_input),
            num_frames=frames.num_frames,
            cache=cache,
            device=self.device,
            dtype=self.dtype,
            pairs=self.pairs,
            prefetch=self.settings.prefetch,
            stored=self.disk.region(frames) if self.disk is not None else None,
        )

    def encoder_for(self, region: Region) -> FrameEncoder:
        """The encoder of ``region``: the session's for its own view, else the zoom's."""
        if region == self.frames.region:
            return self.encoder
        if region not in self.zooms:
            # scaled like the session's frames, not by the region's own percentiles
            frames = self.frame_source(region, self.frames.intensity_range())
            self.zooms[region] = self.frame_encoder(frames, CacheView(self.cache, region))
        return self.zooms[region]

    def new_track(self, region: Region) -> ObjectTrack:
        """A new object's track in its own zoom ``region``."""
        return ObjectTrack(region=region, encoder=self.encoder_for(region))

    def of(self, track: ObjectTrack) -> FrameEncoder:
        """The encoder an object's frames go through."""
        return track.encoder or self.encoder

    def in_use(self, tracks: Iterable[ObjectTrack]) -> list[FrameEncoder]:
        """The encoders of ``tracks``, each once."""
        unique = {id(e): e for e in map(self.of, tracks)}
        return list(unique.values())

    def close(self) -> None:
        """Stop every encoder's prefetch thread (if any), finish writing features to disk and
        drop the features cached in memory."""
        for encoder in (self.encoder, *self.zooms.values()):
            encoder.close()
        if self.disk is not None:
            self.disk.close()
        self.cache.clear()
