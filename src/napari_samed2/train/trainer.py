"""Training on synthetic clips: warm-up + cosine decay, resumable checkpoints, export.

The steps themselves are `loop.run_steps` (the loop fine-tuning runs too).

Everything the loop needs to continue is in ``<run_dir>/last.pt`` (weights, optimizer, step,
settings); batch ``k`` and its prompts depend only on ``(seed, k)``, so a resumed run produces
the same weights as an uninterrupted one. A JSON-lines log (``log.jsonl``) is written as it goes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..atomic import atomic_path, write_text_atomic
from ..model import (
    DEFAULT_MODEL,
    REGISTRY,
    CheckpointError,
    build_model,
    nano_config,
    resolve_device,
    save_checkpoint,
)
from ..model.checkpoint import load_weights_only
from ..model.safe_config import check_network_config
from .clips import DEFAULT_MIX, ClipSampler
from .loop import ClipLoss, run_steps
from .losses import LossWeights
from .tracking import PromptSettings
from .triton_guard import guard_triton_import

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
LOG_NAME = "log.jsonl"
INIT_RECORD_NAME = "init_from.json"  # the training record of the weights a run started from


RUNTIME_SETTINGS = ("threads",)
STATE_KEYS = ("model", "optimizer", "step", "wall_seconds", "settings")


@dataclass
class TrainSettings:
    """Settings of one training run (stored in its checkpoints).

    Attributes
    ----------
    steps : int
        Optimizer steps in total.
    batch_size, num_frames : int
        Clips per step and frames per clip.
    objects_per_clip : int
        Objects drawn per clip (they share the clip's image encoding).
    tracked_per_clip : int
        How many of them are tracked through the clip (0: all).
    click_task : bool
        Also prompt every drawn object on every frame, decoder only (SAM's image task).
    click_seed : bool
        Also draw clicks and boxes into the mask prompt (`model.click_seed`); the exported
        checkpoint then asks the engine to do the same.
    carry_mask : bool
        Give tracked frames the previous frame's mask logits as their mask prompt (also
        recorded in the exported checkpoint's preprocessing).
    carry_drop : float
        Fraction of tracked frames trained without the carried mask: there the memory alone
        must find the object.
    focal_weight, dice_weight : float
        Loss weights of the focal and dice terms (SAM2: 20 and 1). From scratch, focal x20
        drives every mask to empty within ~20 steps; the nano run uses 1 and 5.
    lr, weight_decay : float
        AdamW learning rate (peak) and weight decay.
    warmup : int
        Steps of linear warm-up before the cosine decay to ``lr * final_lr_fraction``.
    clip_grad : float
        Gradient norm clipping.
    seed : int
        Seeds data, prompts and initial weights.
    checkpoint_every, log_every : int
        Steps between checkpoints and between log lines.
    config : dict
        Network configuration (sam2 dict format); the nano architecture by default.
    temporal_adapter : bool
        Build with SAMed-2's temporal adapters.
    mix : dict
        Relative frequency of each synthetic data kind.
    event_focus : float
        Fraction of time-lapse clips chosen around a division or an entering cell
        (`ClipSampler`).
    end_focus : float
        Fraction of volume clips that run past the end of a tracked object (`ClipSampler`).
    object_score_weight : float
        Weight of the object-score (present/absent) loss term (SAM2: 1).
    threads : int
        torch CPU threads (0 leaves torch's default).
    init_from : str, optional
        Start from these weights (a registry name or checkpoint path whose architecture is
        ``config``) instead of a random initialisation: to continue a finished run with a new
        schedule, or to fine-tune.
    """

    steps: int = 2000
    batch_size: int = 2
    num_frames: int = 4
    objects_per_clip: int = 1
    tracked_per_clip: int = 0
    click_task: bool = False
    click_seed: bool = False
    carry_mask: bool = False
    carry_drop: float = 0.1
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 100
    final_lr_fraction: float = 0.05
    clip_grad: float = 1.0
    seed: int = 0
    checkpoint_every: int = 50
    log_every: int = 10
    config: dict[str, Any] = field(default_factory=nano_config)
    temporal_adapter: bool = True
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    event_focus: float = 0.0
    end_focus: float = 0.0
    object_score_weight: float = 1.0
    threads: int = 0
    init_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def loss_weights(settings: TrainSettings) -> LossWeights:
    """The loss weights ``settings`` asks for (IoU head: SAM2's)."""
    return LossWeights(
        focal=settings.focal_weight,
        dice=settings.dice_weight,
        object_score=settings.object_score_weight,
    )


def learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``lr * final_lr_fraction``."""
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    span = max(1, settings.steps - settings.warmup)
    progress = min(1.0, (step - settings.warmup) / span)
    floor = settings.final_lr_fraction
    return settings.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    """What a (possibly resumed) run ended with."""

    net: torch.nn.Module
    steps_done: int
    wall_seconds: float
    last_losses: dict[str, float]


def train(
    settings: TrainSettings,
    run_dir: str | Path,
    device: str | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train (or resume training) a network on synthetic clips.

    Parameters
    ----------
    settings : TrainSettings
        The run's settings. On resume the stored settings must match.
    run_dir : path
        Folder for ``last.pt`` and ``log.jsonl`` (created). Keep it outside the repository.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"mps"``; default picks the best available.
    resume : bool
        Continue from ``run_dir/last.pt`` when it exists.
    stop_after : int, optional
        Stop after this many steps *of this call* (a checkpoint is written), e.g. for tests.
    progress : bool
        Show a tqdm progress bar.
    on_step : callable, optional
        Called with ``(step, losses)`` after every step.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    target = resolve_device(device)
    torch.manual_seed(settings.seed)
    net = build_model(settings.config, temporal_adapter=settings.temporal_adapter).to(target)
    if settings.init_from is not None and not (resume and (run_dir / CHECKPOINT_NAME).exists()):
        _initialise_from(net, settings.init_from, run_dir)  # a resumed run has its weights
    guard_triton_import()  # building an optimizer imports triton
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    start, wall = 0, 0.0
    checkpoint = run_dir / CHECKPOINT_NAME
    if resume and checkpoint.exists():
        state, stored_settings = read_state(checkpoint, map_location=target)
        stored = json.loads(json.dumps(stored_settings.to_dict()))
        wanted = json.loads(json.dumps(settings.to_dict()))
        for name in RUNTIME_SETTINGS:  # how it runs, not what it learns: may change on resume
            stored.pop(name, None)
            wanted.pop(name, None)
        if stored != wanted:
            changed = sorted(k for k in stored if stored[k] != wanted.get(k))
            raise ValueError(
                f"{checkpoint} was written with other settings (differ: {changed}); "
                "use another run_dir or resume=False"
            )
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, wall = int(state["step"]), float(state["wall_seconds"])

    sampler = ClipSampler(
        image_size=settings.config["image_size"],
        num_frames=settings.num_frames,
        batch_size=settings.batch_size,
        seed=settings.seed,
        mix=settings.mix,
        objects_per_clip=settings.objects_per_clip,
        event_focus=settings.event_focus,
        end_focus=settings.end_focus,
    )
    end = settings.steps if stop_after is None else min(settings.steps, start + stop_after)
    logger.info(
        "training started: steps %d to %d of %d on %s, batch %d x %d frames, run dir %s%s",
        start,
        end,
        settings.steps,
        target,
        settings.batch_size,
        settings.num_frames,
        run_dir,
        " (resumed)" if start else "",
    )
    prompting = PromptSettings(
        tracked_per_clip=settings.tracked_per_clip,
        click_task=settings.click_task,
        click_seed=settings.click_seed,
        carry_mask=settings.carry_mask,
        carry_drop=settings.carry_drop,
    )
    weights = loss_weights(settings)
    model = ClipLoss(net, prompting, weights).train()
    bar = tqdm(total=settings.steps, initial=start, disable=not progress, desc="train")
    window: list[dict[str, float]] = []
    began = time.perf_counter()

    def after_step(step: int, losses: dict[str, float]) -> None:
        nonlocal window
        window.append(losses)
        bar.update(1)
        bar.set_postfix(loss=f"{losses['total']:.3f}", dice=f"{losses['dice_rest']:.2f}")
        if on_step is not None:
            on_step(step, losses)
        done = step + 1
        if done % settings.log_every == 0 or done == end:
            _append_log(run_dir, done, wall + time.perf_counter() - began, window)
            logger.info(
                "step %d/%d: loss %.4f (mean of the last %d steps), lr %.2e",
                done,
                settings.steps,
                float(np.mean([w["total"] for w in window])),
                len(window),
                losses["lr"],
            )
            window = []
        if done % settings.checkpoint_every == 0 or done == end:
            _save_state(
                checkpoint, net, optimizer, settings, done, wall + time.perf_counter() - began
            )

    losses = run_steps(
        model,
        optimizer,
        sampler,
        range(start, end),
        seed=settings.seed,
        learning_rate=lambda step: learning_rate(step, settings),
        clip_grad=settings.clip_grad,
        device=target,
        on_step=after_step,
    ).losses
    bar.close()
    net.eval()
    logger.info(
        "training stopped at step %d of %d after %.1f s (%.1f s in all)",
        end,
        settings.steps,
        time.perf_counter() - began,
        wall + time.perf_counter() - began,
    )
    return TrainResult(net, end, wall + time.perf_counter() - began, losses)


def _initialise_from(net: torch.nn.Module, source: str, run_dir: Path) -> None:
    """Copy the weights of checkpoint ``source`` into ``net`` (same architecture required).

    The source's own training record (its file may be replaced later, e.g. the bundled nano
    weights by this run's export) is kept in ``run_dir/INIT_RECORD_NAME`` for the export.
    """
    from ..model import CheckpointMismatchError, load_model
    from ..model.checkpoint import read_checkpoint

    loaded = load_model(source, device="cpu", precision="fp32")  # weights only: no measuring
    try:
        net.load_state_dict(loaded.net.state_dict())
    except RuntimeError as error:
        raise CheckpointMismatchError(
            f"init_from {source!r} does not fit the run's network configuration: {error}"
        ) from error
    record: dict[str, Any] = {"source": str(source)}
    if loaded.source is not None and Path(loaded.source).suffix == ".safetensors":
        training = read_checkpoint(loaded.source).metadata.get("training")
        if training is not None:
            record["training"] = training
    write_text_atomic(run_dir / INIT_RECORD_NAME, json.dumps(record, indent=2) + "\n")


def _init_record(run_dir: Path, settings: TrainSettings) -> dict[str, Any]:
    """``{"init_from": ...}`` for a run that started from other weights, else ``{}``."""
    if settings.init_from is None:
        return {}
    path = run_dir / INIT_RECORD_NAME
    record = json.loads(path.read_text()) if path.exists() else {"source": settings.init_from}
    return {"init_from": record}


def _append_log(run_dir: Path, step: int, wall: float, window: list[dict[str, float]]) -> None:
    if not window:
        return
    mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
    line = json.dumps({"step": step, "wall_seconds": round(wall, 1), **mean})
    # Appending one line is atomic enough for a log; checkpoints use atomic replacement.
    with open(run_dir / LOG_NAME, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def read_state(
    path: Path, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], TrainSettings]:
    """Read a run's ``last.pt`` and its settings without running code from the file.

    Weights-only unpickling (tensors and plain containers), and the stored network config
    is checked (`model.safe_config`) before anything is built from it. Settings added since
    the file was written take their defaults, so old runs still resume.

    Raises
    ------
    UnsafeCheckpointError
        The pickle references code, or the stored config is refused (names the key).
    CheckpointError
        Not a training state: unreadable, keys missing, or settings that are not ours.
    """
    state = load_weights_only(path, map_location, what="training state")
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"{str(path)!r} is not a training state: missing {missing}")
    try:
        values = json.loads(state["settings"])
    except (TypeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{str(path)!r}: 'settings' is not JSON ({error})") from error
    if not isinstance(values, dict):
        raise CheckpointError(f"{str(path)!r}: 'settings' is not a mapping")
    known = set(TrainSettings.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise CheckpointError(
            f"{str(path)!r}: unknown settings {unknown}; accepted: {sorted(known)}"
        )
    if "config" in values:
        check_network_config(values["config"], source=f"{str(path)!r} (settings.config)")
    return state, TrainSettings(**values)


def _save_state(path: Path, net, optimizer, settings: TrainSettings, step: int, wall: float):
    state = {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "wall_seconds": wall,
        "settings": json.dumps(settings.to_dict()),
    }
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def read_log(run_dir: str | Path) -> list[dict[str, float]]:
    """The log lines of a run, oldest first."""
    path = Path(run_dir) / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def export_weights(
    run_dir: str | Path,
    destination: str | Path,
    name: str = DEFAULT_MODEL,
    description: str | None = None,
    data: str = "synthetic microscopy and MRI/CT-like clips (napari_samed2.synthetic)",
    overwrite: bool = True,
    record: dict | None = None,
) -> Path:
    """Write the run's current weights as a self-describing safetensors checkpoint.

    Preprocessing comes from the registry entry ``name`` when there is one (nano: 256 px,
    no normalisation, threshold 0). ``record`` adds to (or corrects) the training record kept
    in the file's metadata and in the ``.json`` beside it.
    """
    run_dir = Path(run_dir)
    state, settings = read_state(run_dir / CHECKPOINT_NAME)
    net = build_model(settings.config, temporal_adapter=settings.temporal_adapter)
    net.load_state_dict(state["model"])
    spec = REGISTRY.get(name)
    preprocessing = replace(
        spec.preprocessing if spec is not None else REGISTRY[DEFAULT_MODEL].preprocessing,
        click_seed=settings.click_seed,
        carry_mask=settings.carry_mask,
    )
    training = {
        "steps": int(state["step"]),
        "seed": settings.seed,
        "wall_seconds": round(float(state["wall_seconds"]), 1),
        "batch_size": settings.batch_size,
        "num_frames": settings.num_frames,
        "objects_per_clip": settings.objects_per_clip,
        "tracked_per_clip": settings.tracked_per_clip,
        "click_task": settings.click_task,
        "click_seed": settings.click_seed,
        "carry_mask": settings.carry_mask,
        "loss_weights": asdict(loss_weights(settings)),
        "lr": settings.lr,
        "data": data,
        "mix": settings.mix,
        **({"carry_drop": settings.carry_drop} if settings.carry_mask else {}),
        **({"event_focus": settings.event_focus} if settings.event_focus else {}),
        **({"end_focus": settings.end_focus} if settings.end_focus else {}),
        **_init_record(run_dir, settings),
        **(record or {}),
    }
    destination = Path(destination)
    save_checkpoint(
        destination,
        net,
        config=settings.config,
        temporal_adapter=settings.temporal_adapter,
        preprocessing=preprocessing,
        name=name,
        description=description or (spec.description if spec else name),
        extra={"training": training},
        overwrite=overwrite,
    )
    write_text_atomic(destination.with_suffix(".json"), json.dumps(training, indent=2) + "\n")
    return destination
