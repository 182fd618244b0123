"""SAMed-2's selective memory: the confidence gate and the bounded long-term bank.

The long-term bank keeps confident mask memories (and every user correction) for the rest of
the session and across images when saved. Retrieval and replacement follow SAMed-2's released
rules (samed2.md §2):

- retrieval for a frame: ``score = max(0, cosine(query key, entry key)) + confidence``, top-k;
- update: find the entry whose mask memory is most similar (cosine) to the new one and replace
  it only if the new confidence is strictly higher; while the bank is not full, append.

Two deliberate differences, documented here because they change numbers:

- **No double sigmoid.** The released code applies ``sigmoid`` to an IoU that the mask decoder
  already passed through a sigmoid, squeezing every confidence into [0.5, 0.73] and nearly
  erasing its weight against the cosine term. We add the predicted IoU (in [0, 1]) as is, and
  corrections enter with confidence 1.0.
- **Pooled keys.** The released key is the full 256x64x64 embedding (4 MB per entry at
  1024 px). Ours is the frame's image embedding average-pooled to ``key_size x key_size``
  (kilobytes); released keys are pooled the same way when imported.

Entries carry the object id they were made for: retrieval for object 3 never returns the mask
memory of object 5 (the released bank is single-object; entries imported from it match any id).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .errors import BankError

BANK_FORMAT = "napari-samed2-memory-bank"
BANK_VERSION = 1
_uids = itertools.count()


def pooled_key(embedding: torch.Tensor, key_size: int) -> torch.Tensor:
    """A retrieval key: ``(1, C, H, W)`` or ``(C, H, W)`` embedding -> unit float32 vector."""
    if embedding.dim() == 3:
        embedding = embedding[None]
    pooled = F.adaptive_avg_pool2d(embedding.float(), key_size).flatten()
    return F.normalize(pooled, dim=0)


@dataclass
class BankEntry:
    """One long-term memory.

    Attributes
    ----------
    features : Tensor
        The memory encoder's mask memory ``(mem_dim, h, w)``, stored as bfloat16.
    key : Tensor
        Unit-norm float32 retrieval key ``(C * key_size**2,)``.
    confidence : float
        Predicted IoU of the mask that made it (1.0 for corrections).
    obj_id : int or None
        Object the memory belongs to; None matches every object (imported banks).
    origin : str
        Provenance, e.g. ``"correction"``, ``"propagation"`` or ``"released"``.
    frame : int
        Frame it came from (-1 when unknown).
    uid : int
        Identifier within this process (not saved).
    """

    features: torch.Tensor
    key: torch.Tensor
    confidence: float
    obj_id: int | None = None
    origin: str = "propagation"
    frame: int = -1
    uid: int = field(default_factory=lambda: next(_uids))


class LongTermBank:
    """A bounded bank of `BankEntry` with SAMed-2's retrieval and replacement rules.

    Parameters
    ----------
    capacity : int
        Maximum number of entries.
    name : str
        A name for the saved file's metadata (banks are named and versioned so that results
        that depend on them can be reproduced).
    frozen : bool
        A frozen bank answers retrievals but accepts no new entries.
    """

    def __init__(self, capacity: int = 64, name: str = "bank", frozen: bool = False):
        if int(capacity) < 1:
            raise BankError(f"capacity must be >= 1, got {capacity!r}")
        self.capacity = int(capacity)
        self.name = name
        self.frozen = frozen
        self.entries: list[BankEntry] = []
        self.revision = 0  # bumped on every change; saved with the bank

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return (
            f"LongTermBank(name={self.name!r}, entries={len(self)}/{self.capacity}, "
            f"revision={self.revision})"
        )

    @property
    def signature(self) -> dict[str, list[int]] | None:
        """Shapes every entry shares (``features`` and ``key``), None for an empty bank."""
        if not self.entries:
            return None
        first = self.entries[0]
        return {"features": list(first.features.shape), "key": list(first.key.shape)}

    def check_compatible(self, features_shape: tuple[int, ...], key_shape: tuple[int, ...]):
        """Raise `BankError` unless entries have these shapes (a bank from another model)."""
        signature = self.signature
        if signature is None:
            return
        if tuple(signature["features"]) != tuple(features_shape) or tuple(
            signature["key"]
        ) != tuple(key_shape):
            raise BankError(
                f"bank {self.name!r} holds memories of shape {signature['features']} with keys "
                f"{signature['key']}, but this model makes {list(features_shape)} and "
                f"{list(key_shape)}; use a bank made with the same model"
            )

    # -- retrieval ---------------------------------------------------------------------------

    def retrieve(self, key: torch.Tensor, k: int, obj_id: int | None = None) -> list[BankEntry]:
        """The top-``k`` entries for a frame whose key is ``key`` (fewer if the bank is small).

        ``score = max(0, cosine(key, entry.key)) + entry.confidence``; only entries of
        ``obj_id`` (or of no object) take part. An empty bank returns an empty list.
        """
        candidates = [e for e in self.entries if e.obj_id is None or e.obj_id == obj_id]
        if k <= 0 or not candidates:
            return []
        keys = torch.stack([e.key for e in candidates])
        cosine = keys @ F.normalize(key.float().flatten(), dim=0)
        confidence = torch.tensor([e.confidence for e in candidates])
        scores = cosine.clamp(min=0) + confidence
        order = torch.argsort(scores, descending=True, stable=True)[:k]
        return [candidates[int(i)] for i in order]

    # -- update ------------------------------------------------------------------------------

    def offer(self, entry: BankEntry) -> bool:
        """Add ``entry`` under SAMed-2's rule; return whether the bank changed.

        Not full: append. Full: the entry with the most similar mask memory (cosine) is
        replaced only if ``entry`` is strictly more confident.
        """
        if self.frozen:
            return False
        if len(self.entries) < self.capacity:
            self.entries.append(entry)
            self.revision += 1
            return True
        flat = F.normalize(entry.features.float().flatten(), dim=0)
        stacked = torch.stack([e.features.float().flatten() for e in self.entries])
        similarity = F.normalize(stacked, dim=1) @ flat
        nearest = int(torch.argmax(similarity))
        if entry.confidence > self.entries[nearest].confidence:
            self.entries[nearest] = entry
            self.revision += 1
            return True
        return False

    def replace(self, uid: int, entry: BankEntry) -> bool:
        """Put ``entry`` in place of the entry ``uid`` (e.g. a re-corrected frame), or offer it
        if that entry is gone."""
        if self.frozen:
            return False
        for index, existing in enumerate(self.entries):
            if existing.uid == uid:
                self.entries[index] = entry
                self.revision += 1
                return True
        return self.offer(entry)

    def remove_object(self, obj_id: int) -> int:
        """Drop every entry of ``obj_id``; return how many were dropped."""
        before = len(self.entries)
        self.entries = [e for e in self.entries if e.obj_id != obj_id]
        if len(self.entries) != before:
            self.revision += 1
        return before - len(self.entries)

    def remove_entries(self, uids) -> int:
        """Drop the entries whose ``uid`` is in ``uids``; return how many were dropped."""
        uids = set(uids)
        before = len(self.entries)
        self.entries = [e for e in self.entries if e.uid not in uids]
        if len(self.entries) != before:
            self.revision += 1
        return before - len(self.entries)

    def set_entries(self, entries) -> None:
        """Replace the content with ``entries`` (an undo going back to earlier content); a
        new revision unless the content is the same."""
        entries = list(entries)
        if [e.uid for e in self.entries] == [e.uid for e in entries]:
            return
        self.entries = entries
        self.revision += 1  # new content under this name: a revision number is never reused

    def clear(self) -> None:
        self.entries.clear()
        self.revision += 1


def passes_gate(iou: float, object_score: float, threshold: float) -> bool:
    """SAMed-2/SAMURAI-style gate: remember a frame only if the object is present and the
    predicted IoU reaches ``threshold``."""
    return object_score > 0 and iou >= threshold
