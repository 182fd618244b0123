"""What a fine-tune writes: the new checkpoint, its JSON card, and the user's model list.

The card (``NEW.json`` beside ``NEW.safetensors``) says where the model came from and how
good it is: the base model and its weights' sha256, the label set (path, format version,
entries), the settings, the held-out Dice before and after, steps and wall time. The same
record goes into the checkpoint's metadata, so the file describes itself.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ..atomic import write_text_atomic
from ..model import CheckpointError, LoadedModel, save_checkpoint
from ..model.user_models import UserModel, add_user_model


def card_path(out: Path) -> Path:
    return out.with_suffix(".json")


def check_output(out: str | Path, base_source: Path | None = None) -> Path:
    """``out`` as a path for a new checkpoint: a ``.safetensors`` file that does not exist yet
    (nor its card), and not the base model's file.

    Raises
    ------
    CheckpointError
        The suffix is not ``.safetensors``, or the file or its card exists.
    """
    out = Path(out).expanduser()
    if out.suffix != ".safetensors":
        raise CheckpointError(
            f"the fine-tuned model is written as a .safetensors file; got {str(out)!r}"
        )
    if base_source is not None and out.resolve() == Path(base_source).resolve():
        raise CheckpointError(
            f"{str(out)!r} is the base model's file; fine-tuning never replaces it"
        )
    for path in (out, card_path(out)):
        if path.exists():
            raise CheckpointError(
                f"{str(path)!r} exists; refusing to overwrite it (choose another --out)"
            )
    return out


def recorded_training(source: Path | None) -> dict[str, Any] | None:
    """The training record in one of our safetensors checkpoints (None for other files)."""
    if source is None or Path(source).suffix != ".safetensors":
        return None
    try:
        with safe_open(str(source), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("training")
    except (SafetensorError, OSError):
        return None
    try:
        record = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def state_sha256(net: torch.nn.Module) -> str:
    """A checksum of ``net``'s weights (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_outputs(
    out: Path,
    base: LoadedModel,
    card: dict[str, Any],
    training: dict[str, Any],
) -> tuple[Path, dict[str, Any]]:
    """Write ``base.net`` (now holding the kept weights) to ``out`` with ``card`` and
    ``training`` in its metadata, the card beside it, and record it in the user's list.
    Returns the card's path and the card (with the new file's name and sha256)."""
    name = out.stem
    labelset = card["labelset"]
    description = (
        f"{base.name} fine-tuned on label set {labelset.get('name') or labelset.get('path')} "
        f"({labelset.get('entries')} entries)"
    )
    save_checkpoint(
        out,
        base.net,
        config=base.config,
        temporal_adapter=base.temporal_adapter,
        preprocessing=base.preprocessing,
        name=name,
        description=description,
        extra={"training": training, "finetune": card},
    )
    from ..model.download import file_sha256

    card = {"name": name, "file": out.name, "sha256": file_sha256(out), **card}
    path = card_path(out)
    write_text_atomic(path, json.dumps(card, indent=1) + "\n")
    add_user_model(
        UserModel(
            name=name,
            path=str(out),
            base=base.name,
            created=card["created"],
            heldout_dice=card["heldout_dice"]["after"],
        )
    )
    return path, card


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
