"""Fine-tuning a model on a user's label set: `finetune`, used by the CLI, the GUI and scripts.

The steps are the training loop's (`loop.run_steps`, `tracking.track_clip`, `losses`) on clips
from the label set (`labelset_clips`); what learns is chosen by `trainable`. Held-out objects
are scored through the engine (`heldout`) before training and periodically; the best weights
on them are kept and written as a new self-describing checkpoint with a JSON card
(`finetune_card`). Under ``torchrun`` every rank trains on its share of the objects in
DistributedDataParallel and rank 0 evaluates and writes (`distributed`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..engine.frames import ModelInput
from ..model import LoadedModel, load_model, resolve_device
from ..model.download import file_sha256
from . import distributed
from .finetune_card import check_output, now, recorded_training, state_sha256, write_outputs
from .frozen_features import DEFAULT_CACHE_BYTES, FrozenFeatures
from .heldout import HeldOutDice
from .labelset_clips import LabelSetClips
from .labelset_data import LabelSetData, read_labelset
from .loop import ClipLoss, run_steps
from .losses import LossWeights
from .tracking import PromptSettings
from .trainable import TRAINABLE_CHOICES, encoder_frozen, select_trainable

logger = logging.getLogger(__name__)

DEFAULT_MINUTES = 5.0  # the budget when neither minutes nor steps is given
EVALUATIONS = 10  # held-out evaluations per run, besides the one before training
EVAL_SHARE = 3.0  # under a time budget: train at least this many times as long as evaluating


@dataclass
class FinetuneSettings:
    """How a fine-tune trains (defaults suit a few complete frames and a few minutes).

    Attributes
    ----------
    lr : float
        AdamW learning rate after the warm-up (constant: a run may stop at any time).
    warmup : int
        Steps of linear warm-up.
    weight_decay, clip_grad : float
        AdamW weight decay and gradient-norm clipping.
    num_frames : int
        Most frames per clip.
    objects_per_clip : int
        Most objects per clip.
    eval_every : int, optional
        Steps between held-out evaluations; default a tenth of ``steps``.
    eval_seconds : float, optional
        Seconds between held-out evaluations under a time budget; default a tenth of it, or
        three times as long as an evaluation takes, whichever is longer.
    focal_weight, dice_weight : float, optional
        Loss weights; default those the base model was trained with (recorded in our
        checkpoints), else SAM2's (20 and 1).
    augment : bool
        Random flips and transposes of the clips.
    threads : int
        torch CPU threads (0 leaves torch's default).
    feature_cache_bytes : int
        Bound of the cache of frame features (frozen image encoder only).
    """

    lr: float = 1e-4
    warmup: int = 10
    weight_decay: float = 0.01
    clip_grad: float = 1.0
    num_frames: int = 4
    objects_per_clip: int = 4
    eval_every: int | None = None
    eval_seconds: float | None = None
    focal_weight: float | None = None
    dice_weight: float | None = None
    augment: bool = True
    threads: int = 0
    feature_cache_bytes: int = DEFAULT_CACHE_BYTES


@dataclass
class FinetuneProgress:
    """Where a fine-tune is, for a progress bar: ``step`` of ``steps`` (None under a time
    budget), ``seconds`` of ``budget_seconds``, the last loss, the last and best held-out Dice."""

    step: int
    steps: int | None
    seconds: float
    budget_seconds: float | None
    loss: float | None = None
    heldout_dice: float | None = None
    best_dice: float | None = None
    best_step: int | None = None

    @property
    def fraction(self) -> float:
        """Done so far, in [0, 1]."""
        parts = []
        if self.steps:
            parts.append(self.step / self.steps)
        if self.budget_seconds:
            parts.append(self.seconds / self.budget_seconds)
        return min(1.0, max(parts)) if parts else 0.0


@dataclass
class FinetuneResult:
    """What a fine-tune produced.

    Attributes
    ----------
    path, card_path : Path or None
        The new checkpoint and its card (None on ranks other than 0).
    card : dict
        The card's content.
    heldout_before, heldout_after : float or None
        Held-out Dice of the base and of the kept weights (None without held-out objects).
    steps : int
        Optimizer steps run.
    best_step : int
        The step whose weights were kept (0: the base's, when training never beat it).
    wall_seconds : float
        Time from the first evaluation to the end of training.
    stopped_by : str
        ``"steps"``, ``"time"`` or ``"stop request"``.
    model : LoadedModel
        The network holding the kept weights, ready for a `PropagationSession`.
    final_weights_sha256 : str
        Checksum of the weights after the last step (equal on every rank of a distributed run).
    history : list of (int, float)
        ``(step, held-out Dice)`` of every evaluation.
    """

    path: Path | None
    card_path: Path | None
    card: dict[str, Any]
    heldout_before: float | None
    heldout_after: float | None
    steps: int
    best_step: int
    wall_seconds: float
    stopped_by: str
    model: LoadedModel
    final_weights_sha256: str
    history: list[tuple[int, float]] = field(default_factory=list)


def finetune(
    labelset,
    base: str | Path,
    out: str | Path,
    *,
    minutes: float | None = None,
    steps: int | None = None,
    train: str = "decoder",
    device: str | None = "auto",
    holdout: float = 0.2,
    seed: int = 0,
    progress: Callable[[FinetuneProgress], None] | None = None,
    stop=None,
    settings: FinetuneSettings | None = None,
) -> FinetuneResult:
    """Fine-tune ``base`` on a label set and write the result as a new checkpoint.

    Parameters
    ----------
    labelset : LabelSet or path
        The label set (`napari_samed2.labelset.LabelSet`, or its folder).
    base : str or Path
        A registry name or a checkpoint file (anything `load_model` accepts). Never modified.
    out : str or Path
        The new ``.safetensors`` file (must not exist); its card is written beside it with
        the suffix ``.json``, and the model joins the user's list (`model.user_models`).
    minutes : float, optional
        Time budget (evaluations included; loading and writing not).
    steps : int, optional
        Optimizer steps. With both, whichever ends first; with neither, 5 minutes.
    train : {"decoder", "adapters", "all"}
        What learns (`trainable`): by default the mask decoder, memory attention, memory
        encoder and object heads, with the image encoder frozen.
    device : str, optional
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``; under torchrun CUDA means each rank's GPU.
    holdout : float
        Fraction of the set's objects held out to choose the best weights, in [0, 1); whole
        objects of a source (all their frames) are held out, chosen by ``seed``. 0 trains on
        everything and keeps the last weights.
    seed : int
        Seed of the split, the clips and the prompts.
    progress : callable, optional
        Called with a `FinetuneProgress` after every step and evaluation (rank 0 only).
    stop : threading.Event or callable, optional
        When set (or when it returns True) the run ends after the current step, keeping the
        best weights so far.
    settings : FinetuneSettings, optional
        Learning rate, clip size, evaluation schedule and the like.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    FinetuneDataError
        An empty label set, or one with no held-out object although ``holdout > 0``.
    ValueError
        Bad arguments (each named with what is accepted), frames of one source with different
        shapes, or ``train="adapters"`` for a network without adapters.
    ModelError
        The base does not exist or does not load; the output exists (`CheckpointError`).
    """
    settings = settings or FinetuneSettings()
    budget, steps = _check_budget(minutes, steps)
    if train not in TRAINABLE_CHOICES:
        raise ValueError(f"train must be one of {TRAINABLE_CHOICES}, got {train!r}")
    if not (isinstance(holdout, (int, float)) and 0.0 <= holdout < 1.0):
        raise ValueError(f"holdout must be a fraction in [0, 1), got {holdout!r}")
    out = check_output(out)
    labelset = _open(labelset)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    workers = distributed.join(resolve_device(device))
    try:
        data = read_labelset(labelset, holdout=holdout, seed=seed)
        model = load_model(base, device=workers.device, progressbar=workers.main)
        check_output(out, model.source)
        run = _Run(model, data, workers, settings, train, seed, budget, steps, progress, stop)
        return run.execute(out, base, labelset, holdout)
    finally:
        distributed.leave(workers)


def _check_budget(minutes, steps) -> tuple[float | None, int | None]:
    if minutes is not None and not (isinstance(minutes, (int, float)) and minutes > 0):
        raise ValueError(f"minutes must be a number > 0, got {minutes!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if minutes is None and steps is None:
        minutes = DEFAULT_MINUTES
    return (None if minutes is None else 60.0 * float(minutes)), steps


def _open(labelset):
    if hasattr(labelset, "entries"):
        return labelset
    from ..labelset import LabelSet

    path = Path(labelset)
    if not path.exists():
        raise FileNotFoundError(f"label set {str(path)!r} does not exist")
    return LabelSet.open(path)


class _Run:
    """One fine-tune's state between steps: clock, evaluations, the best weights so far."""

    def __init__(self, model, data, workers, settings, train, seed, budget, steps, progress, stop):
        self.model: LoadedModel = model
        self.data: LabelSetData = data
        self.workers = workers
        self.settings = settings
        self.train = train
        self.seed = seed
        self.budget, self.steps = budget, steps
        self.progress, self.stop = progress, stop
        net = model.net
        self.trainable = select_trainable(net, train)
        self.frozen = encoder_frozen(net)
        prep = model.preprocessing
        self.weights = self._loss_weights()
        prompting = PromptSettings(
            click_task=True, click_seed=prep.click_seed, carry_mask=prep.carry_mask
        )
        self.clip_loss = ClipLoss(net, prompting, self.weights)
        self._training_mode()
        self.step_model = distributed.wrap(self.clip_loss, workers)
        source = LabelSetClips(
            data,
            ModelInput(prep.image_size, prep.mean, prep.std),
            num_frames=settings.num_frames,
            objects_per_clip=settings.objects_per_clip,
            seed=seed,
            rank=workers.rank,
            world_size=workers.world_size,
            augment=settings.augment,
        )
        self.source = (
            FrozenFeatures(source, net, workers.device, settings.feature_cache_bytes)
            if self.frozen
            else source
        )
        self.evaluate = (
            HeldOutDice(data, keep_features=self.frozen) if workers.main and data.heldout else None
        )
        self.history: list[tuple[int, float]] = []
        self.best: tuple[int, float, dict[str, torch.Tensor]] | None = None
        self.loss: float | None = None
        self.stopped_by = "steps"
        self.began = 0.0
        self.last_eval = 0.0
        self.eval_seconds = 0.0  # how long the last held-out evaluation took

    # -- the run -------------------------------------------------------------------------------

    def execute(self, out: Path, base, labelset, holdout: float) -> FinetuneResult:
        net = self.model.net
        optimizer = torch.optim.AdamW(
            [p for p in net.parameters() if p.requires_grad],
            lr=self.settings.lr,
            weight_decay=self.settings.weight_decay,
        )
        self.began = time.perf_counter()
        before = self._evaluate(0)
        warmup = max(1, self.settings.warmup)
        done = run_steps(
            self.step_model,
            optimizer,
            self.source,
            range(0, self.steps if self.steps is not None else 2**62),
            seed=self.seed,
            learning_rate=lambda step: self.settings.lr * min(1.0, (step + 1) / warmup),
            clip_grad=self.settings.clip_grad,
            device=self.workers.device,
            on_step=self._after_step,
            should_stop=self._should_stop,
        )
        steps_done = done.next_step
        if self.evaluate is not None and self.history[-1][0] != steps_done:
            self._evaluate(steps_done)
        wall = time.perf_counter() - self.began
        final_sha = state_sha256(net)
        net.eval()
        if self.evaluate is not None:
            self.evaluate.close()
        best_step, after = steps_done, None
        if self.best is not None:
            best_step, after, state = self.best
            net.load_state_dict(state, strict=False)
        logger.info(
            "fine-tune ended after %d steps (%s, %.1f s): held-out Dice %s -> %s (step %d kept)",
            steps_done,
            self.stopped_by,
            wall,
            _fmt(before),
            _fmt(after),
            best_step,
        )
        card = self._card(base, labelset, holdout, before, after, steps_done, best_step, wall)
        path = card_file = None
        if self.workers.main:
            training = self._training_record(base, steps_done)
            card_file, card = write_outputs(out, self.model, card, training)
            path = out
        distributed.barrier(self.workers)
        return FinetuneResult(
            path=path,
            card_path=card_file,
            card=card,
            heldout_before=before,
            heldout_after=after,
            steps=steps_done,
            best_step=best_step,
            wall_seconds=wall,
            stopped_by=self.stopped_by,
            model=self.model,
            final_weights_sha256=final_sha,
            history=list(self.history),
        )

    def _should_stop(self, step: int) -> bool:
        reason = None
        if _stop_requested(self.stop):
            reason = "stop request"
        elif self.budget is not None and time.perf_counter() - self.began >= self.budget:
            reason = "time"
        if reason is not None:
            self.stopped_by = reason
        stop = distributed.agree(reason is not None, self.workers)
        if stop and reason is None:
            self.stopped_by = "another rank"
        return stop

    def _after_step(self, step: int, losses: dict[str, float]) -> None:
        done = step + 1
        self.loss = losses["total"]
        if self.evaluate is not None and self._evaluation_due(done):
            self._evaluate(done)
        else:
            self._report(done)

    def _evaluation_due(self, done: int) -> bool:
        every = self.settings.eval_every
        if every is None and self.steps is not None:
            every = max(1, self.steps // EVALUATIONS)
        if every is not None and done % every == 0:
            return True
        seconds = self.settings.eval_seconds
        if seconds is None and self.budget is not None:
            # a tenth of the budget, but evaluating at most a quarter of the time
            seconds = max(self.budget / EVALUATIONS, EVAL_SHARE * self.eval_seconds)
        return seconds is not None and time.perf_counter() - self.last_eval >= seconds

    def _evaluate(self, done: int) -> float | None:
        """Score the current weights on the held-out objects; keep them if they are the best."""
        if self.evaluate is None:
            return None
        started = time.perf_counter()
        self.model.net.eval()  # (a kept session does not set it again)
        try:
            score = self.evaluate(self.model)
        finally:
            self._training_mode()
        self.last_eval = time.perf_counter()
        self.eval_seconds = self.last_eval - started
        self.history.append((done, score))
        if self.best is None or score > self.best[1]:
            net = self.model.net
            learning = set(self.trainable)
            state = {n: p.detach().to("cpu", copy=True) for n, p in net.named_parameters()
                     if n in learning}  # fmt: skip
            self.best = (done, score, state)
        logger.info("step %d: held-out Dice %.4f (best %.4f)", done, score, self.best[1])
        self._report(done)
        return score

    def _report(self, done: int) -> None:
        if self.progress is None or not self.workers.main:
            return
        best = self.best
        self.progress(
            FinetuneProgress(
                step=done,
                steps=self.steps,
                seconds=time.perf_counter() - self.began,
                budget_seconds=self.budget,
                loss=self.loss,
                heldout_dice=self.history[-1][1] if self.history else None,
                best_dice=best[1] if best else None,
                best_step=best[0] if best else None,
            )
        )

    def _training_mode(self) -> None:
        self.clip_loss.train()
        if self.frozen:  # as the engine runs it: its features are cached
            self.model.net.image_encoder.eval()

    # -- records -------------------------------------------------------------------------------

    def _loss_weights(self) -> LossWeights:
        recorded = (recorded_training(self.model.source) or {}).get("loss_weights") or {}
        focal = self.settings.focal_weight
        dice = self.settings.dice_weight
        defaults = LossWeights()
        return LossWeights(
            focal=float(focal if focal is not None else recorded.get("focal", defaults.focal)),
            dice=float(dice if dice is not None else recorded.get("dice", defaults.dice)),
        )

    def _card(self, base, labelset, holdout, before, after, steps, best_step, wall) -> dict:
        source = self.model.source
        return {
            "created": now(),
            "base": {
                "name": self.model.name,
                "given": str(base),
                "file": str(source) if source is not None else None,
                "sha256": file_sha256(source) if source is not None else None,
            },
            "labelset": {
                "path": self.data.path,
                "name": getattr(labelset, "name", None),
                "format_version": self.data.version,
                "entries": self.data.entries,
                **self.data.summary(),
            },
            "settings": {
                "train": self.train,
                "minutes": None if self.budget is None else self.budget / 60.0,
                "steps": self.steps,
                "holdout": holdout,
                "seed": self.seed,
                "device": str(self.workers.device),
                "world_size": self.workers.world_size,
                "trainable_parameters": int(
                    sum(p.numel() for p in self.model.net.parameters() if p.requires_grad)
                ),
                "loss_weights": asdict(self.weights),
                **{k: v for k, v in asdict(self.settings).items() if k != "threads"},
            },
            "heldout_dice": {
                "before": before,
                "after": after,
                "history": [[s, d] for s, d in self.history],
            },
            "steps": steps,
            "best_step": best_step,
            "stopped_by": self.stopped_by,
            "wall_seconds": round(wall, 1),
        }

    def _training_record(self, base, steps: int) -> dict[str, Any]:
        source = self.model.source
        return {
            "steps": steps,
            "seed": self.seed,
            "lr": self.settings.lr,
            "loss_weights": asdict(self.weights),
            "click_seed": self.model.preprocessing.click_seed,
            "carry_mask": self.model.preprocessing.carry_mask,
            "data": f"label set {self.data.path}",
            "init_from": {
                "source": str(base),
                "sha256": file_sha256(source) if source is not None else None,
                **({"training": t} if (t := recorded_training(source)) else {}),
            },
        }


def _stop_requested(stop) -> bool:
    if stop is None:
        return False
    if hasattr(stop, "is_set"):
        return bool(stop.is_set())
    return bool(stop())


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"
