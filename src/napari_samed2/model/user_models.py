"""The user's fine-tuned models: a small list kept beside the downloaded weights.

``finetuned.json`` in the weights cache (`download.cache_dir`) records every checkpoint
`train.finetune` writes, so that ``samed2 models`` and the widget's model picker list it at
once. The checkpoint files stay where the user wrote them; an entry whose file is gone is
not listed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from .download import cache_dir

logger = logging.getLogger(__name__)

USER_MODELS_FILE = "finetuned.json"


@dataclass(frozen=True)
class UserModel:
    """One fine-tuned checkpoint: its name, file, base model and held-out Dice after tuning."""

    name: str
    path: str
    base: str
    created: str = ""
    heldout_dice: float | None = None

    @property
    def exists(self) -> bool:
        return Path(self.path).is_file()


def user_models_path(directory: Path | None = None) -> Path:
    return Path(directory or cache_dir()) / USER_MODELS_FILE


def user_models(directory: Path | None = None, existing: bool = True) -> list[UserModel]:
    """The recorded fine-tuned models, oldest first (``existing``: only those whose file is
    still there). An unreadable list is logged and read as empty: it only helps to find files."""
    path = user_models_path(directory)
    if not path.is_file():
        return []
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        models = [UserModel(**_fields(r)) for r in records["models"]]
    except (OSError, ValueError, TypeError, KeyError) as error:
        logger.warning("ignoring the unreadable list of fine-tuned models %s: %s", path, error)
        return []
    return [m for m in models if m.exists or not existing]


def add_user_model(model: UserModel, directory: Path | None = None) -> Path:
    """Record ``model`` (replacing an entry for the same file), written atomically."""
    resolved = str(Path(model.path).resolve())
    entry = UserModel(**{**asdict(model), "path": resolved})
    kept = [m for m in user_models(directory, existing=False) if m.path != resolved]
    path = user_models_path(directory)
    payload = {"version": 1, "models": [asdict(m) for m in [*kept, entry]]}
    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")
    return path


def _fields(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise TypeError(f"entry {record!r} is not an object")
    known = UserModel.__dataclass_fields__
    return {key: value for key, value in record.items() if key in known}
