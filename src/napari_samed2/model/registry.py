"""The registry of known checkpoints: architecture, preprocessing, and where the weights live."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .configs import sam2_config, small_config
from .errors import UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How a checkpoint expects its input and how its masks are binarised.

    ``mean``/``std`` of ``None`` means no normalisation (images scaled to [0, 1] only).
    """

    image_size: int = 1024
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD
    mask_threshold: float = 0.0
    click_seed: bool = False  # clicks and boxes also drawn into the mask prompt (click_seed.py)
    carry_mask: bool = False  # tracked frames get the neighbour's mask logits as mask prompt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        mean, std = values.get("mean"), values.get("std")
        return cls(
            image_size=int(values["image_size"]),
            mean=tuple(mean) if mean is not None else None,
            std=tuple(std) if std is not None else None,
            mask_threshold=float(values.get("mask_threshold", 0.0)),
            click_seed=bool(values.get("click_seed", False)),
            carry_mask=bool(values.get("carry_mask", False)),
        )


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the registry.

    Exactly one of ``url`` (downloadable), ``manual_download`` (the user fetches the file by
    hand and puts it in the cache) or ``bundled`` (shipped inside this package) is set.
    ``sha256`` is the publisher's checksum when one exists; otherwise it is recorded at the
    first download and checked on every later load (see `download.py`).
    """

    name: str
    description: str
    config: Callable[[], dict[str, Any]]
    temporal_adapter: bool
    preprocessing: Preprocessing
    licence: str
    filename: str | None = None
    url: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    manual_download: str | None = None
    bundled: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        if self.bundled:
            return "bundled"
        if self.url:
            return "download"
        if self.manual_download:
            return "manual"
        return "none"


META_092824 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
META_072824 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824"
SAMED2_DRIVE_NOTE = (
    "SAMed-2's weights are published on Google Drive only (see the SAMed-2 repository README, "
    "arXiv 2507.03698). Download latest_epoch_0217.pth by hand and place it at {path}, "
    "or pass the file's path to load_model / the widget's file dialog."
)
SAM2_PREPROCESSING = Preprocessing(1024, IMAGENET_MEAN, IMAGENET_STD, 0.0)
SAM2_SIZES = {
    # name: (yaml size letter, 2.1 file bytes, 2.0 file bytes when known)
    "tiny": ("t", 156_008_466, None),
    "small": ("s", 184_416_285, None),
    "base-plus": ("b+", 323_606_802, None),
    "large": ("l", 898_083_611, None),
}
SAM2_FILE_STEMS = {"tiny": "tiny", "small": "small", "base-plus": "base_plus", "large": "large"}


def nano_config() -> dict[str, Any]:
    """Architecture of the embedded ``samed2-nano`` model (trained by `train/`)."""
    return small_config(
        embed_dim=24,
        stages=(1, 2, 4, 1),
        global_att_blocks=(5,),
        window_spec=(8, 4, 8, 4),
        d_model=64,
        mem_dim=32,
        memory_layers=2,
        memory_ffn=256,
        num_maskmem=7,
        image_size=256,
    )


def _sam2_entries() -> dict[str, ModelSpec]:
    entries = {}
    for version, base, label in (
        ("sam2.1", META_092824, "SAM 2.1"),
        ("sam2", META_072824, "SAM 2.0"),
    ):
        for size, (_, size_21, size_20) in SAM2_SIZES.items():
            name = f"{version}-{size}"
            stem = f"{version}_hiera_{SAM2_FILE_STEMS[size]}.pt"
            entries[name] = ModelSpec(
                name=name,
                description=f"Meta {label} Hiera-{size} (video and image)",
                config=functools.partial(sam2_config, name),
                temporal_adapter=False,
                preprocessing=SAM2_PREPROCESSING,
                licence="Apache-2.0",
                filename=stem,
                url=f"{base}/{stem}",
                size_bytes=size_21 if version == "sam2.1" else size_20,
            )
    return entries


REGISTRY: dict[str, ModelSpec] = {
    **_sam2_entries(),
    "samed2": ModelSpec(
        name="samed2",
        description="SAMed-2 (SAM2-S + temporal adapters), medical images, box prompts",
        config=functools.partial(sam2_config, "sam2-small"),
        temporal_adapter=True,
        preprocessing=Preprocessing(1024, None, None, 0.5),
        licence="Apache-2.0",
        filename="latest_epoch_0217.pth",
        manual_download=SAMED2_DRIVE_NOTE,
    ),
    "medsam2": ModelSpec(
        name="medsam2",
        description="MedSAM2 (bowang-lab): SAM2.1 Hiera-T at 512 px for 3-D medical images",
        config=functools.partial(sam2_config, "sam2.1-tiny", image_size=512),
        temporal_adapter=False,
        preprocessing=Preprocessing(512, IMAGENET_MEAN, IMAGENET_STD, 0.0),
        licence="Apache-2.0",
        filename="MedSAM2_latest.pt",
        url="https://huggingface.co/wanglab/MedSAM2/resolve/main/MedSAM2_latest.pt",
    ),
    "samed2-nano": ModelSpec(
        name="samed2-nano",
        description="Small SAMed-2 trained by this project on synthetic microscopy; embedded",
        config=nano_config,
        temporal_adapter=True,
        preprocessing=Preprocessing(256, None, None, 0.0, click_seed=True, carry_mask=True),
        licence="Apache-2.0",
        filename="samed2-nano.safetensors",
        bundled="weights/samed2-nano.safetensors",
    ),
}

DEFAULT_MODEL = "samed2-nano"


def get_spec(name: str) -> ModelSpec:
    """The registry entry called ``name``; a clear `UnknownModelError` lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))} "
            "(or pass the path of a checkpoint file)"
        ) from None
