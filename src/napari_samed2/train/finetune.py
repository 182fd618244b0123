"""Fine-tuning a model on a user's label set: `finetune`, used by the CLI, the GUI and scripts.

The steps are the training loop's (`loop.run_steps`, `tracking.track_clip`, `losses`) on clips
from the label set (`labelset_clips`); what learns is chosen by `trainable`. Held-out objects
are scored through the engine (`heldout`) before training and periodically; the best weights
on them are kept and written as a new self-describing checkpoint with a JSON card
(`finetune_card`). Under ``torchrun`` every rank trains on its share of the objects in
DistributedDataParallel and rank 0 evaluates and writes (`distributed`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..model import load_model, requested_precision, resolve_device
from . import distributed
from .finetune_card import check_output
from .finetune_run import FinetuneRun
from .finetune_settings import FinetuneProgress, FinetuneResult, FinetuneSettings
from .labelset_data import read_labelset
from .trainable import TRAINABLE_CHOICES

__all__ = ["FinetuneProgress", "FinetuneResult", "FinetuneSettings", "finetune"]

DEFAULT_MINUTES = 5.0  # the budget when neither minutes nor steps is given


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
        # no measuring of "auto" inside a run (its workers share the machine): fp32 there
        precision = "fp32" if requested_precision(workers.device) == "auto" else None
        model = load_model(
            base, device=workers.device, precision=precision, progressbar=workers.main
        )
        check_output(out, model.source)
        run = FinetuneRun(
            model, data, workers, settings, train, seed, budget, steps, progress, stop
        )
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
