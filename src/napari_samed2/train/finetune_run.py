"""One fine-tune from start to end: steps, held-out evaluations, the best weights, the files.

`finetune.finetune` checks its arguments, loads the base and reads the label set, then a
`FinetuneRun` trains with the loop (`loop.run_steps`), evaluates the held-out objects through
the engine before training and periodically, keeps the best weights in memory, and writes them
(rank 0 of a distributed run).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..engine.frames import ModelInput
from ..model import LoadedModel
from ..model.download import file_sha256
from . import distributed
from .finetune_card import now, recorded_training, state_sha256, write_outputs
from .finetune_settings import FinetuneProgress, FinetuneResult
from .frozen_features import FrozenFeatures
from .heldout import HeldOutDice
from .labelset_clips import LabelSetClips
from .labelset_data import LabelSetData
from .loop import ClipLoss, run_steps
from .losses import LossWeights
from .tracking import PromptSettings
from .trainable import encoder_frozen, select_trainable
from .triton_guard import guard_triton_import

logger = logging.getLogger(__name__)

EVALUATIONS = 10  # held-out evaluations per run, besides the one before training
EVAL_SHARE = 3.0  # under a time budget: train at least this many times as long as evaluating


class FinetuneRun:
    """One fine-tune's state between steps: clock, evaluations, the best weights so far.

    Parameters
    ----------
    model : LoadedModel
        The base, loaded; trained in place.
    data : LabelSetData
        The label set, read and split.
    workers : distributed.Workers
        This process's place in the run.
    settings : FinetuneSettings
    train : str
        What learns (`trainable.select_trainable`).
    seed : int
    budget : float or None
        Seconds.
    steps : int or None
    progress, stop
        As in `finetune.finetune`.
    """

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
            end_clips=settings.end_clips,
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
        guard_triton_import()  # building an optimizer imports triton
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
        defaults = LossWeights()
        chosen = {
            "focal": self.settings.focal_weight,
            "dice": self.settings.dice_weight,
            "object_score": self.settings.object_score_weight,
        }
        return LossWeights(
            **{
                name: float(
                    value if value is not None else recorded.get(name, getattr(defaults, name))
                )
                for name, value in chosen.items()
            }
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
