"""What a fine-tune takes and gives: its settings, its progress reports and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import LoadedModel
from .frozen_features import DEFAULT_CACHE_BYTES


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
    object_score_weight : float, optional
        Weight of the object-score loss (None: as for the other two). 5 by default: absent
        frames teach only the object score, and where objects end is what a label set of
        complete frames teaches best (on tissue stacks it gave +0.10 Dice over weight 1).
    end_clips : float
        Share of clips that run past an end of their object (`labelset_clips.LabelSetClips`).
    augment : bool
        Random flips and transposes of the clips.
    threads : int
        torch CPU threads (0 leaves torch's default).
    feature_cache_bytes : int
        Bound of the cache of frame features (frozen image encoder only).
    """

    lr: float = 3e-4
    warmup: int = 10
    weight_decay: float = 0.01
    clip_grad: float = 1.0
    num_frames: int = 4
    objects_per_clip: int = 4
    eval_every: int | None = None
    eval_seconds: float | None = None
    focal_weight: float | None = None
    dice_weight: float | None = None
    object_score_weight: float | None = 5.0
    end_clips: float = 0.5
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
