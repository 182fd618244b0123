"""``precision="auto"``: fp32 or bf16, chosen by measuring this machine once and remembered.

bf16 autocast runs SAM2's image encoder about twice as fast as fp32 on CPUs with bf16 units
(AVX-512 BF16, AMX) and on recent GPUs, and several times slower on CPUs without them (it is
emulated). So the choice is measured: a few tracked frames (image encoder, memory attention
over a full memory, SAM heads, memory encoder) at the network's own input size in each
precision (interleaved, medians), and bf16 is chosen only if it is at least
`SPEEDUP_NEEDED` times faster *and* its masks match fp32's (IoU >= `MIN_MASK_IOU` for every
click on a synthetic image). Timings are kept per (device, its name and bf16 features, torch
version, architecture), the mask check per weights as well, in ``precision.json`` in the
cache folder (`download.cache_dir`), written atomically; an unreadable file is reported and
measured again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sam2.modeling.sam2_base import SAM2Base

from ..atomic import write_text_atomic
from .device import DTYPES, autocast
from .download import cache_dir
from .fingerprint import weights_fingerprint
from .registry import Preprocessing

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "precision.json"
FILE_VERSION = 2  # 1: encoder passes were timed (misjudged small networks)
# bf16 must be this much faster than fp32 (a whole tracked frame) to be worth its rounding:
# above the noise of medians of interleaved passes (the nano model, whose frame is as fast in
# both, measured 1.00-1.05x in repeated calibrations on one machine), below the gain a frame
# shows where only the encoder speeds up (docs/design.md, "Precision auto")
SPEEDUP_NEEDED = 1.1
MIN_MASK_IOU = 0.98  # every calibration mask in bf16 against fp32
REPEATS = 3  # timed tracked frames per precision at least (after one warm-up each)
# Fast frames (a small network) are repeated until this much was timed: a 40-ms frame's median
# of 3 swings by 20 % on a busy host, enough to flip a choice near the margin.
MIN_TIMED_S = 2.0
MAX_REPEATS = 40
TIME_BUDGET_S = 30.0  # fewer repeats when passes are slow (a large model on a small CPU)
EMULATED = 2.0  # a pair with bf16 this many times slower: no bf16 units, stop measuring
OBJECTS = 3  # objects tracked in a timed frame (the demo's count; the encoder runs once)
CLICKS = 4  # objects clicked on the calibration image
# CPU features that decide whether bf16 is fast (Linux /proc/cpuinfo names)
BF16_CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


@dataclass(frozen=True)
class Calibration:
    """What ``precision="auto"`` measured and chose.

    Attributes
    ----------
    precision : {"fp32", "bf16"}
        The choice.
    fp32_ms, bf16_ms : float
        Median tracked frame (encoder, memory attention, heads, memory encoder) in each
        precision, milliseconds (``bf16_ms`` is ``inf`` where
        bf16 autocast failed on the device).
    min_iou : float or None
        Lowest IoU of a bf16 calibration mask against its fp32 mask; None when bf16 was not
        faster (not checked).
    from_cache : bool
        Read from ``precision.json`` instead of measured now.
    """

    precision: str
    fp32_ms: float
    bf16_ms: float
    min_iou: float | None
    from_cache: bool = False

    @property
    def speedup(self) -> float:
        """How many times faster bf16 ran than fp32 (below 1: slower)."""
        return self.fp32_ms / self.bf16_ms if self.bf16_ms > 0 else float("inf")

    def describe(self) -> str:
        """One line for the model line and logs, e.g. ``auto: bf16 1.9x faster, masks IoU
        >= 0.996``."""
        if not np.isfinite(self.bf16_ms):
            return "auto: bf16 is not available here"
        text = f"auto: bf16 {self.speedup:.1f}x {'faster' if self.speedup >= 1 else 'as fast'}"
        if self.min_iou is not None:
            text += f", masks IoU >= {self.min_iou:.3f}"
            if self.min_iou < MIN_MASK_IOU:
                text += f" (below {MIN_MASK_IOU})"
        return text


def choose(
    net: SAM2Base,
    device: torch.device,
    config: dict[str, Any],
    preprocessing: Preprocessing,
    *,
    directory: Path | None = None,
) -> Calibration:
    """fp32 or bf16 for ``net`` on ``device``, measured on first use and remembered.

    Parameters
    ----------
    net : SAM2Base
        The loaded network (eval mode, on ``device``).
    device : torch.device
    config : dict
        Its architecture (sam2's ``model:`` mapping): timings are shared by every network of
        the same architecture on this machine.
    preprocessing : Preprocessing
        How the network is fed (input size, mean/std, click seeds, mask threshold).
    directory : Path, optional
        Folder of ``precision.json``; default the cache folder (``$NAPARI_SAMED2_CACHE``).

    Returns
    -------
    Calibration
    """
    path = Path(directory or cache_dir()) / CALIBRATION_FILE
    key = calibration_key(device, config, int(net.image_size))
    records = _read(path)
    record = records.get(key)
    if record is not None and not _faster(record):
        return _decide(record, None, from_cache=True)
    weights = weights_fingerprint(net)  # only where bf16 is faster: the masks decide
    if record is not None and weights in record["masks"]:
        return _decide(record, record["masks"][weights], from_cache=True)

    image, clicks = calibration_image(int(net.image_size), preprocessing)
    image = image.to(device)
    if record is None:
        logger.info("measuring fp32 against bf16 for precision='auto' (%s)", key)
        fp32_ms, bf16_ms = _time_frames(net, image, device)
        record = {"fp32_ms": fp32_ms, "bf16_ms": bf16_ms, "masks": {}}
    min_iou = None
    if _faster(record):
        min_iou = mask_agreement(net, image, clicks, device, preprocessing)
        record["masks"][weights] = min_iou
    records[key] = record
    _write(path, records)
    choice = _decide(record, min_iou, from_cache=False)
    logger.info("precision='auto' chose %s (%s)", choice.precision, choice.describe())
    return choice


def calibration_key(device: torch.device, config: dict[str, Any], image_size: int) -> str:
    """What the timings depend on: the device and its bf16 features, torch, the architecture."""
    architecture = hashlib.sha256(
        json.dumps(config, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    return (
        f"{device.type} | {device_name(device)} | torch {torch.__version__} | "
        f"architecture {architecture} | {image_size} px"
    )


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model with the features that make bf16 fast."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"mps {platform.machine()} {platform.mac_ver()[0]}"
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and value.strip():
                model = value.strip()
            elif name.strip() == "flags":
                flags = set(value.split())
                break
    found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{model} ({capability}{''.join(' ' + f for f in found)})"


def calibration_image(
    image_size: int, preprocessing: Preprocessing, seed: int = 0
) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """A synthetic nuclei image as the network takes it, ``(1, 3, S, S)`` float32, and a click
    ``(x, y)`` deep inside each of its `CLICKS` largest nuclei (model-input pixels)."""
    from scipy import ndimage

    from ..synthetic import nuclei_image

    sample = nuclei_image(
        (image_size, image_size), seed=seed, radius=(image_size / 40, image_size / 14)
    )
    values = sample.image.astype(np.float64)
    low, high = np.percentile(values, (0.5, 99.5))
    scaled = np.clip((values - low) / max(high - low, 1e-9), 0.0, 1.0).astype(np.float32)
    image = torch.from_numpy(scaled)[None, None].expand(1, 3, -1, -1).clone()
    if preprocessing.mean is not None and preprocessing.std is not None:
        mean = torch.tensor(preprocessing.mean, dtype=torch.float32)[:, None, None]
        std = torch.tensor(preprocessing.std, dtype=torch.float32)[:, None, None]
        image = (image - mean) / std
    labels = sample.labels
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    clicks = []
    for obj_id in ids[np.argsort(-sizes)][:CLICKS]:
        depth = ndimage.distance_transform_edt(labels == obj_id)
        row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
        clicks.append((float(col) + 0.5, float(row) + 0.5))
    return image, clicks


def mask_agreement(
    net: SAM2Base,
    image: torch.Tensor,
    clicks: list[tuple[float, float]],
    device: torch.device,
    preprocessing: Preprocessing,
) -> float:
    """Lowest IoU between the bf16 and the fp32 mask of each click (1.0 without clicks)."""
    masks = {name: _click_masks(net, image, clicks, device, preprocessing, name) for name in DTYPES}
    ious = [_iou(a, b) for a, b in zip(masks["fp32"], masks["bf16"], strict=True)]
    return min(ious, default=1.0)


def _click_masks(net, image, clicks, device, preprocessing, precision) -> list[np.ndarray]:
    from . import sam2_step
    from .click_seed import with_click_seed

    if not clicks:
        return []
    count = len(clicks)
    point_inputs = {
        "point_coords": torch.tensor(clicks, dtype=torch.float32, device=device)[:, None],
        "point_labels": torch.ones(count, 1, dtype=torch.int32, device=device),
    }
    seed = (
        with_click_seed(point_inputs, None, int(net.image_size))
        if preprocessing.click_seed
        else None
    )
    no_memory = sam2_step.Sam2Memory(
        output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, num_frames=1
    )
    with torch.inference_mode(), autocast(device, DTYPES[precision]):
        levels = sam2_step.FeatureLevels.from_maps(*sam2_step.encode_images(net, image))
        levels = levels.select(torch.zeros(count, dtype=torch.long, device=device))
        pix_feat = sam2_step.conditioned_features(
            net, levels=levels, frame=0, is_init_cond=True, memory=no_memory
        )
        out = sam2_step.decode(
            net,
            pix_feat=pix_feat,
            high_res_features=sam2_step.high_res_features(levels),
            is_init_cond=True,
            point_inputs=point_inputs,
            mask_inputs=seed,
        )
    masks = (out.high_res_masks.float() > preprocessing.mask_threshold)[:, 0]
    return list(masks.cpu().numpy())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _time_frames(net: SAM2Base, image: torch.Tensor, device: torch.device) -> tuple[float, float]:
    """Median cost of one tracked frame in fp32 and in bf16, ms (bf16 ``inf`` if autocast
    fails here).

    A tracked frame is what propagation spends on a frame: the image encoder once, then for
    each of `OBJECTS` objects memory attention over a full memory (the prompted frame and
    ``num_maskmem - 1`` recent frames, with their object pointers), the SAM heads and the
    memory encoder, each step in its own autocast region as the engine runs it. Timing the
    encoder alone misjudges small networks: the embedded model's encoder is faster in bf16 on
    a CPU with bf16 units, but its object steps (many small operations) are not: its frame
    is no faster, and the demo (three objects) runs slower in bf16.

    Passes alternate, so that a slow spell of the machine hits both: at least `REPEATS` pairs,
    more while less than `MIN_TIMED_S` was timed (up to `MAX_REPEATS`). They stop early when
    a pair shows bf16 `EMULATED` times slower (CPUs without bf16 units run it several times
    slower: more passes would only make the first load longer) or after `TIME_BUDGET_S`; past
    that budget after the warm-up pair, the warm-up pair is the measurement.
    """
    from . import sam2_step

    def one_pass(precision: str, memory) -> float:
        dtype = DTYPES[precision]
        with torch.inference_mode():
            _synchronize(device)
            start = time.perf_counter()
            with autocast(device, dtype):
                levels = sam2_step.FeatureLevels.from_maps(*sam2_step.encode_images(net, image))
            for _ in range(OBJECTS):
                with autocast(device, dtype):
                    out = sam2_step.track_step(
                        net, levels=levels, frame=memory.num_frames - 1, is_init_cond=False,
                        memory=memory,
                    )  # fmt: skip
                    sam2_step.encode_memory(
                        net,
                        levels=levels,
                        high_res_masks=out.high_res_masks,
                        object_score_logits=out.object_score_logits,
                        from_points=False,
                    )
            _synchronize(device)
        return (time.perf_counter() - start) * 1000.0

    begun = time.perf_counter()
    memory = _full_memory(net, image, device)  # both precisions attend to it (autocast casts)
    warm_up = {"fp32": one_pass("fp32", memory)}  # allocations, kernel choice
    try:
        warm_up["bf16"] = one_pass("bf16", memory)
    except RuntimeError as error:  # bf16 autocast not implemented for this device/op
        logger.warning("bf16 autocast failed on %s; precision='auto' uses fp32: %s", device, error)
        return one_pass("fp32", memory), float("inf")
    if time.perf_counter() - begun > TIME_BUDGET_S:
        # frames of seconds (a large model on a CPU): the warm-ups are the measurement; the
        # first calls' set-up is small beside such frames
        return warm_up["fp32"], warm_up["bf16"]
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for pair in range(1, MAX_REPEATS + 1):
        for precision in times:
            times[precision].append(one_pass(precision, memory))
        timed_s = (sum(times["fp32"]) + sum(times["bf16"])) / 1000.0
        if (
            times["bf16"][-1] >= EMULATED * times["fp32"][-1]
            or time.perf_counter() - begun > TIME_BUDGET_S
            or (pair >= REPEATS and timed_s >= MIN_TIMED_S)
        ):
            break
    return statistics.median(times["fp32"]), statistics.median(times["bf16"])


def _full_memory(net: SAM2Base, image: torch.Tensor, device: torch.device):
    """A `sam2_step.Sam2Memory` as full as propagation's: the memory of one click on ``image``
    (fp32) as the prompted frame and as each of the ``num_maskmem - 1`` frames tracked before."""
    from . import sam2_step

    size = float(net.image_size)
    clicks = {
        "point_coords": torch.tensor([[[size / 2, size / 2]]], device=device),
        "point_labels": torch.ones(1, 1, dtype=torch.int32, device=device),
    }
    empty = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    with torch.inference_mode():
        levels = sam2_step.FeatureLevels.from_maps(*sam2_step.encode_images(net, image))
        out = sam2_step.track_step(
            net, levels=levels, frame=0, is_init_cond=True,
            memory=sam2_step.Sam2Memory(empty, num_frames=1), point_inputs=clicks,
        )  # fmt: skip
        features, pos_enc = sam2_step.encode_memory(
            net,
            levels=levels,
            high_res_masks=out.high_res_masks,
            object_score_logits=out.object_score_logits,
            from_points=True,
        )
    entry = {"maskmem_features": features, "maskmem_pos_enc": pos_enc, "obj_ptr": out.obj_ptr}
    recent = max(int(net.num_maskmem), 1)
    outputs = {
        "cond_frame_outputs": {0: entry},
        "non_cond_frame_outputs": {frame: entry for frame in range(1, recent)},
    }
    return sam2_step.Sam2Memory(outputs, num_frames=recent + 1)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _faster(record: dict[str, Any]) -> bool:
    return record["bf16_ms"] * SPEEDUP_NEEDED <= record["fp32_ms"]


def _decide(record: dict[str, Any], min_iou: float | None, *, from_cache: bool) -> Calibration:
    keeps_masks = min_iou is not None and min_iou >= MIN_MASK_IOU
    return Calibration(
        precision="bf16" if _faster(record) and keeps_masks else "fp32",
        fp32_ms=float(record["fp32_ms"]),
        bf16_ms=float(record["bf16_ms"]),
        min_iou=min_iou,
        from_cache=from_cache,
    )


def _read(path: Path) -> dict[str, dict[str, Any]]:
    """The calibrations in ``path`` ({} if there is none); an unreadable file is reported and
    read as empty (everything is measured again and the file rewritten)."""
    if not path.is_file():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        version = payload.get("version")
        if isinstance(version, int) and 0 < version < FILE_VERSION:
            logger.info("%s was measured by an earlier method (version %d); measuring again",
                        path, version)  # fmt: skip
            return {}
        if version != FILE_VERSION:
            raise ValueError(f"version {version!r}, expected {FILE_VERSION}")
        return {str(key): _checked(record) for key, record in payload["calibrations"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        logger.warning(
            "the precision calibrations in %s are unreadable (%s); measuring again", path, error
        )
        return {}


def _checked(record: Any) -> dict[str, Any]:
    fp32_ms, bf16_ms = float(record["fp32_ms"]), float(record["bf16_ms"])
    if not (np.isfinite(fp32_ms) and fp32_ms > 0 and bf16_ms > 0):
        raise ValueError(f"timings {fp32_ms!r}, {bf16_ms!r} are not positive")
    masks = {str(k): float(v) for k, v in dict(record.get("masks", {})).items()}
    if any(not 0.0 <= iou <= 1.0 for iou in masks.values()):
        raise ValueError(f"mask IoUs {masks} outside [0, 1]")
    return {"fp32_ms": fp32_ms, "bf16_ms": bf16_ms, "masks": masks}


def _write(path: Path, records: dict[str, dict[str, Any]]) -> None:
    payload = {"version": FILE_VERSION, "calibrations": records}
    try:
        write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")
    except OSError as error:  # a read-only cache: the choice stands, it is measured next time
        logger.warning("could not save the precision calibration to %s: %s", path, error)
