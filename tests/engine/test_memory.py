"""Long-term bank: SAMed-2's retrieval and replacement, files, and the released pickle."""

from __future__ import annotations

import pickle

import pytest
import torch

from napari_samed2.engine import (
    BankEntry,
    BankError,
    LongTermBank,
    UnsafeBankError,
    load_bank,
    passes_gate,
    pooled_key,
    read_released_bank,
    save_bank,
)


def _entry(seed: int, confidence: float, obj_id=1) -> BankEntry:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(8, 4, 4, generator=generator).to(torch.bfloat16)
    key = pooled_key(torch.randn(1, 16, 8, 8, generator=generator), 2)
    return BankEntry(features=features, key=key, confidence=confidence, obj_id=obj_id, frame=seed)


def test_empty_bank_retrieves_nothing():
    bank = LongTermBank(capacity=4)
    assert bank.retrieve(torch.ones(64), k=3, obj_id=1) == []


def test_retrieval_scores_cosine_plus_confidence_per_object():
    bank = LongTermBank(capacity=8)
    near, far, confident, other = _entry(0, 0.2), _entry(1, 0.2), _entry(2, 0.9), _entry(3, 1, 2)
    for entry in (near, far, confident, other):
        bank.offer(entry)
    query = near.key.clone()  # cosine 1 with `near`
    top = bank.retrieve(query, k=2, obj_id=1)
    scores = {e.uid: max(0.0, float(e.key @ query)) + e.confidence for e in (near, far, confident)}
    expected = sorted(scores, key=scores.get, reverse=True)[:2]
    assert [e.uid for e in top] == expected
    assert other.uid not in [e.uid for e in bank.retrieve(query, k=8, obj_id=1)]
    assert [e.uid for e in bank.retrieve(query, k=8, obj_id=2)] == [other.uid]


def test_full_bank_replaces_most_similar_only_when_more_confident():
    bank = LongTermBank(capacity=2)
    first, second = _entry(0, 0.6), _entry(1, 0.6)
    bank.offer(first)
    bank.offer(second)
    weaker = BankEntry(first.features.clone(), first.key, confidence=0.5, obj_id=1)
    assert not bank.offer(weaker) and len(bank) == 2
    equal = BankEntry(first.features.clone(), first.key, confidence=0.6, obj_id=1)
    assert not bank.offer(equal)  # strictly higher only
    stronger = BankEntry(first.features.clone(), first.key, confidence=0.9, obj_id=1)
    assert bank.offer(stronger)
    assert [e.uid for e in bank.entries] == [stronger.uid, second.uid]
    bank.frozen = True
    assert not bank.offer(_entry(5, 1.0)) and len(bank) == 2


def test_entries_change_only_through_the_bank_and_every_change_is_a_revision():
    bank = LongTermBank(capacity=8)
    entries = [_entry(seed, 0.5) for seed in range(3)]
    for entry in entries:
        bank.offer(entry)
    revision = bank.revision
    assert bank.remove_entries([entries[1].uid, 12345]) == 1
    assert [e.uid for e in bank.entries] == [entries[0].uid, entries[2].uid]
    assert bank.revision == revision + 1
    assert bank.remove_entries([entries[1].uid]) == 0 and bank.revision == revision + 1
    bank.set_entries(entries)  # an undo back to the earlier content
    assert [e.uid for e in bank.entries] == [e.uid for e in entries]
    assert bank.revision == revision + 2
    bank.set_entries(list(entries))  # same content: no new revision
    assert bank.revision == revision + 2


def test_gate():
    assert passes_gate(0.8, 1.0, 0.5)
    assert not passes_gate(0.8, -0.1, 0.5)
    assert not passes_gate(0.4, 3.0, 0.5)


def test_save_load_round_trip(tmp_path):
    bank = LongTermBank(capacity=5, name="liver-ct")
    for seed, obj in ((0, 1), (1, 2), (2, None)):
        bank.offer(_entry(seed, 0.3 + 0.2 * seed, obj))
    path = tmp_path / "bank.safetensors"
    save_bank(bank, path)
    loaded = load_bank(path)
    assert (loaded.name, loaded.capacity, loaded.revision, len(loaded)) == ("liver-ct", 5, 3, 3)
    for a, b in zip(bank.entries, loaded.entries, strict=True):
        assert torch.equal(a.features, b.features) and torch.equal(a.key, b.key)
        assert (a.confidence, a.obj_id, a.origin, a.frame) == pytest.approx(
            (b.confidence, b.obj_id, b.origin, b.frame)
        )
    empty = tmp_path / "empty.safetensors"
    save_bank(LongTermBank(capacity=2), empty)
    assert len(load_bank(empty)) == 0


def test_loading_refuses_other_files(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "pt"})
    with pytest.raises(BankError, match="is not 'napari-samed2-memory-bank'"):
        load_bank(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a bank")
    with pytest.raises(BankError, match="not a safetensors bank"):
        load_bank(junk)
    with pytest.raises(BankError, match="does not exist"):
        load_bank(tmp_path / "missing.safetensors")


def test_released_pickle_layout_is_read_to_cpu(tmp_path):
    entries = []
    for i in range(3):
        entries.append(
            [
                torch.randn(1, 8, 4, 4),  # mask memory
                torch.randn(1, 8, 4, 4),  # its positional encoding
                torch.tensor([0.5 + 0.1 * i]),  # predicted IoU
                torch.randn(16 * 4 * 4),  # flattened memory-conditioned embedding
            ]
        )
    path = tmp_path / "memory_bank_list_640.pkl"
    with open(path, "wb") as handle:
        pickle.dump(entries, handle)
    bank = read_released_bank(path, key_size=2)
    assert len(bank) == 3 and bank.capacity == 3
    entry = bank.entries[2]
    assert entry.features.shape == (8, 4, 4) and entry.features.device.type == "cpu"
    assert entry.key.shape == (16 * 2 * 2,)
    assert entry.confidence == pytest.approx(0.7)
    assert entry.obj_id is None and entry.origin == "released"
    assert torch.equal(entry.features, entries[2][0][0].to(torch.bfloat16))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "memory_bank_list_640.pkl"
    with open(path, "wb") as handle:
        pickle.dump([[torch.zeros(1, 8, 4, 4), _Exploit(marker), 0.9]], handle)
    with pytest.raises(UnsafeBankError, match="system"):
        read_released_bank(path)
    assert not marker.exists()
