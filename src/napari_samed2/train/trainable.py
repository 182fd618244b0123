"""Which parameters of a SAM2 / SAMed-2 network learn when fine-tuning (the others are frozen).

``decoder`` (the default) trains what turns image features into masks and carries them from
frame to frame: the mask decoder (with its IoU and object-score heads), memory attention, the
memory encoder, the object-pointer projections and the memory and pointer embeddings. The image
encoder stays frozen, and so do the decoder's projections of its high-resolution maps (sam2
applies them when it encodes a frame, and caches the result), so features cached by an open
session stay valid for the new weights.
``adapters`` adds SAMed-2's temporal adapters (inside the image encoder); ``all`` trains
everything.
"""

from __future__ import annotations

from torch import nn

from ..model import adapter_parameters

TRAINABLE_CHOICES = ("decoder", "adapters", "all")

# Submodules and parameters of sam2's SAM2Base that the ``decoder`` choice trains.
DECODER_MODULES = (
    "sam_mask_decoder",
    "memory_attention",
    "memory_encoder",
    "obj_ptr_proj",
    "obj_ptr_tpos_proj",
)
# Applied by sam2's forward_image, so part of every cached frame encoding: frozen unless "all".
FEATURE_PROJECTIONS = ("sam_mask_decoder.conv_s0.", "sam_mask_decoder.conv_s1.")
DECODER_PARAMETERS = (
    "maskmem_tpos_enc",
    "no_mem_embed",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "no_obj_embed_spatial",
)


def select_trainable(net: nn.Module, train: str) -> list[str]:
    """Set ``requires_grad`` on ``net``'s parameters for the choice ``train``.

    Parameters
    ----------
    net : SAM2Base
        The network (changed in place).
    train : {"decoder", "adapters", "all"}
        What learns (see the module docstring).

    Returns
    -------
    list of str
        The names of the parameters that learn.

    Raises
    ------
    ValueError
        An unknown choice, or ``"adapters"`` for a network without temporal adapters.
    """
    if train not in TRAINABLE_CHOICES:
        raise ValueError(f"train must be one of {TRAINABLE_CHOICES}, got {train!r}")
    adapters = {id(p) for p in adapter_parameters(net)}
    if train == "adapters" and not adapters:
        raise ValueError(
            "train='adapters': this network has no temporal adapters (only SAMed-2 networks "
            "do); use 'decoder' or 'all'"
        )
    chosen = []
    for name, parameter in net.named_parameters():
        top = name.split(".", 1)[0]
        learns = train == "all" or (
            (top in DECODER_MODULES or top in DECODER_PARAMETERS)
            and not name.startswith(FEATURE_PROJECTIONS)
        )
        learns = learns or (train == "adapters" and id(parameter) in adapters)
        parameter.requires_grad_(learns)
        if learns:
            chosen.append(name)
    return chosen


def encoder_frozen(net: nn.Module) -> bool:
    """Whether nothing that makes a frame's features learns (so they can be cached): the image
    encoder and the decoder's projections of its high-resolution maps."""
    return not any(
        p.requires_grad
        for name, p in net.named_parameters()
        if name.startswith(("image_encoder.", *FEATURE_PROJECTIONS))
    )
