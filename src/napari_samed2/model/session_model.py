"""What a session needs to know about its model: a `LoadedModel` or a bare `SAM2Base` as one
`SessionModel` (network, input size, mean/std, mask threshold, profile, device, dtype, name)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sam2.modeling.sam2_base import SAM2Base

from .loader import LoadedModel
from .profile import ModelProfile, profile_for
from .registry import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .temporal_adapter import has_temporal_adapter


@dataclass(frozen=True)
class SessionModel:
    """A network with how to feed it and how to read its masks.

    Attributes
    ----------
    net : SAM2Base
    image_size : int
        The square input size the preprocessing asks for (the network's own).
    mean, std : tuple of float or None
        Normalisation of the [0, 1] images (None: none).
    mask_threshold : float
        Mask logits above it are the object.
    profile : ModelProfile
        What the model does beyond sam2's predictor (click seeds, carried masks) and the
        defaults of the session options measured for it (`model.profile`).
    device, dtype
        Where and in which precision the network runs.
    name : str
        For logs.
    """

    net: SAM2Base
    image_size: int
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    mask_threshold: float
    profile: ModelProfile
    device: torch.device
    dtype: torch.dtype
    name: str


def session_model(model: LoadedModel | SAM2Base) -> SessionModel:
    """``model`` as a `SessionModel`.

    A `LoadedModel` (`load_model`) brings its preprocessing, device and dtype; a bare network
    (`build_model`) gets ImageNet mean/std at the net's image size, mask threshold 0, the
    profile of a SAM 2 network (SAMed-2's with a temporal adapter), the net's device and
    float32.

    Raises
    ------
    TypeError
        If ``model`` is neither.
    ValueError
        If the preprocessing's image size is not the network's.
    """
    if isinstance(model, LoadedModel):
        prep = model.preprocessing
        adapted = SessionModel(
            net=model.net,
            image_size=prep.image_size,
            mean=prep.mean,
            std=prep.std,
            mask_threshold=float(prep.mask_threshold),
            profile=model.profile,
            device=model.device,
            dtype=model.dtype,
            name=model.name,
        )
    elif isinstance(model, SAM2Base):
        adapted = SessionModel(
            net=model,
            image_size=int(model.image_size),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            mask_threshold=0.0,
            profile=profile_for(Preprocessing(), has_temporal_adapter(model)),
            device=next(model.parameters()).device,
            dtype=torch.float32,
            name=type(model).__name__,
        )
    else:
        raise TypeError(
            "model must be a LoadedModel (load_model) or a SAM2Base (build_model), got "
            f"{type(model).__name__}"
        )
    if int(adapted.net.image_size) != adapted.image_size:
        raise ValueError(
            f"preprocessing image_size {adapted.image_size} differs from the "
            f"network's {adapted.net.image_size}"
        )
    return adapted
