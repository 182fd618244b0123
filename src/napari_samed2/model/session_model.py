"""What a session needs to know about its model: a `LoadedModel` or a bare `SAM2Base` as one
`SessionModel` (network, input size, mean/std, mask threshold, hints, device, dtype, name)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sam2.modeling.sam2_base import SAM2Base

from .loader import LoadedModel
from .registry import IMAGENET_MEAN, IMAGENET_STD


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
    click_seed, carry_mask : bool
        The model's hints (`model.click_seed`; the neighbour's mask as a mask prompt).
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
    click_seed: bool
    carry_mask: bool
    device: torch.device
    dtype: torch.dtype
    name: str


def session_model(model: LoadedModel | SAM2Base) -> SessionModel:
    """``model`` as a `SessionModel`.

    A `LoadedModel` (`load_model`) brings its preprocessing, device and dtype; a bare network
    (`build_model`) gets ImageNet mean/std at the net's image size, mask threshold 0, no hints,
    the net's device and float32.

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
            click_seed=bool(prep.click_seed),
            carry_mask=bool(prep.carry_mask),
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
            click_seed=False,
            carry_mask=False,
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
