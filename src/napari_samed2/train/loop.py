"""The one training loop: clips from a source, SAM2's forward pass over them, AdamW steps.

`trainer.train` (synthetic clips, the embedded model's recipe) and `finetune.finetune` (a
user's label set) both run `run_steps`; they differ in where clips come from (a `ClipSource`),
which parameters learn (those with ``requires_grad``), and what happens between steps
(checkpoints and logs, or held-out evaluation and keeping the best weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from .clips import Clip
from .losses import LossWeights
from .tracking import ClipOutcome, PromptSettings, track_clip


class ClipSource(Protocol):
    """Where training clips come from: batch ``index`` depends only on ``index`` (and the
    source's seed), so a resumed run replays what an uninterrupted one would have done."""

    def batch(self, index: int) -> Clip: ...


class ClipLoss(nn.Module):
    """`track_clip` as a module's forward pass.

    DistributedDataParallel averages gradients only for a forward pass run through it; wrapping
    the whole pass (image encoder, memory, decoder, losses) in one module lets ``DDP(ClipLoss)``
    do that, and a single process calls the same module unwrapped.
    """

    def __init__(self, net: nn.Module, prompting: PromptSettings, weights: LossWeights):
        super().__init__()
        self.net = net
        self.prompting = prompting
        self.weights = weights

    def forward(self, clip: Clip, rng: np.random.Generator) -> ClipOutcome:
        return track_clip(self.net, clip, rng, self.prompting, self.weights)


@dataclass
class StepsDone:
    """What `run_steps` ended with: the next step to run and the last step's losses."""

    next_step: int
    losses: dict[str, float]


def run_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    source: ClipSource,
    steps: range,
    *,
    seed: int,
    learning_rate: Callable[[int], float],
    clip_grad: float,
    device: torch.device | str,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    should_stop: Callable[[int], bool] | None = None,
) -> StepsDone:
    """Run optimizer steps ``steps`` on clips from ``source``.

    Parameters
    ----------
    model : ClipLoss or DistributedDataParallel of one
        The forward pass; its parameters with ``requires_grad`` are clipped together.
    optimizer : torch.optim.Optimizer
        Holds the parameters that learn; its learning rate is set before every step.
    source : ClipSource
        ``source.batch(step)`` is the clip of step ``step``.
    steps : range
        Step numbers to run (``range(start, end)``).
    seed : int
        Step ``k`` seeds torch with ``seed * 1_000_003 + k`` and the prompt simulation with
        ``(seed, k)``: a step depends only on the seed and its number.
    learning_rate : callable
        ``learning_rate(step)`` for that step.
    clip_grad : float
        Gradient-norm clipping.
    device : torch.device or str
        Where the clip's tensors go.
    on_step : callable, optional
        ``on_step(step, losses)`` after every step.
    should_stop : callable, optional
        ``should_stop(step)`` before every step; True ends the run before that step.

    Returns
    -------
    StepsDone
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    prompting = _prompting(model)
    done = StepsDone(steps.start, {})
    for step in steps:
        if should_stop is not None and should_stop(step):
            break
        # Per-step seeds: resuming at step k replays exactly what step k would have done.
        torch.manual_seed(seed * 1_000_003 + step)
        rng = np.random.default_rng([seed, step, 1])
        clip = source.batch(step)
        clip.images, clip.masks = clip.images.to(device), clip.masks.to(device)
        rate = learning_rate(step)
        for group in optimizer.param_groups:
            group["lr"] = rate
        outcome = model(clip, rng)
        optimizer.zero_grad(set_to_none=True)
        outcome.loss.total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, clip_grad)
        optimizer.step()
        losses = outcome.loss.as_floats()
        losses.update(
            grad_norm=float(grad_norm),
            lr=rate,
            dice_first=float(outcome.frame_dice[0]),
            dice_rest=float(outcome.frame_dice[1:].mean()) if clip.num_frames > 1 else 0.0,
        )
        if prompting.click_task:
            losses["dice_click"] = outcome.click_dice
        done = StepsDone(step + 1, losses)
        if on_step is not None:
            on_step(step, losses)
    return done


def _prompting(model: nn.Module) -> PromptSettings:
    inner = getattr(model, "module", model)  # DistributedDataParallel keeps it in .module
    return inner.prompting
