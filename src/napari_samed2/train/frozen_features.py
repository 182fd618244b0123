"""Image features for training clips from a frozen image encoder, computed once per frame.

When the image encoder (and sam2's projections of its maps) does not learn, fine-tuning's
default, a frame's features never change: they are computed the first time the frame is drawn
(each frame on its own, as the engine encodes a lone image) and kept in the engine's
byte-bounded `FeatureCache`.
"""

from __future__ import annotations

import torch

from ..engine.features import FeatureCache, FrameFeatures
from ..model.sam2_step import FeatureLevels, encode_images
from .clips import Clip
from .loop import ClipSource
from .trainable import encoder_frozen

DEFAULT_CACHE_BYTES = 2 * 1024**3


class FrozenFeatures:
    """A `loop.ClipSource` whose clips carry their features (``Clip.features``).

    Parameters
    ----------
    source : ClipSource
        Gives clips with ``frame_keys`` (equal keys, equal images).
    net : SAM2Base
        Its image encoder must be frozen (no parameter with ``requires_grad``).
    device : torch.device or str
        Where the encoder runs and the features stay.
    max_bytes : int
        Bound of the cache; frames pushed out are encoded again when drawn again.
    """

    def __init__(
        self, source: ClipSource, net, device, max_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        if not encoder_frozen(net):
            raise ValueError("FrozenFeatures needs a frozen image encoder (it learns here)")
        self.source = source
        self.net = net
        self.device = torch.device(device)
        self.cache = FeatureCache(max_bytes)
        self.encoded = 0  # frames run through the encoder (tests read it)

    def batch(self, index: int) -> Clip:
        clip = self.source.batch(index)
        if clip.frame_keys is None:
            raise ValueError("clips need frame_keys for their features to be cached")
        images = clip.images.reshape(-1, *clip.images.shape[2:])
        frames = [self._features(k, i) for k, i in zip(clip.frame_keys, images, strict=True)]
        count = len(frames)
        maps = [torch.cat(level) for level in zip(*(f.maps for f in frames), strict=True)]
        pos_maps = [p.expand(count, -1, -1, -1) for p in frames[0].pos_maps]
        clip.features = FeatureLevels.from_maps(maps, pos_maps)
        return clip

    def _features(self, key, image: torch.Tensor) -> FrameFeatures:
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        was_training = self.net.image_encoder.training
        self.net.image_encoder.eval()
        try:
            with torch.no_grad():
                maps, pos_maps = encode_images(self.net, image[None].to(self.device))
        finally:
            self.net.image_encoder.train(was_training)
        self.encoded += 1
        features = FrameFeatures(maps=list(maps), pos_maps=list(pos_maps))
        self.cache.put(key, features)
        return features
