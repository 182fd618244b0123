"""Exceptions turned into the plain sentence a notification shows."""

from __future__ import annotations

from napari_samed2.ui.messages import plain_message


def test_out_of_memory_gets_advice():
    message = plain_message(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "Failed")
    assert message.startswith("Failed: CUDA out of memory. Tried to allocate 2 GiB.")
    assert "try the CPU, a smaller model, or a smaller image" in message
    assert "ran out of memory" in plain_message(MemoryError(), "Propagate both failed")


def test_key_errors_lose_their_quotes_and_long_asides_go():
    assert plain_message(KeyError("'x' is not a model"), "Loading") == "Loading: 'x' is not a model"
    aside = "(" + "torch explains at length " * 6 + ")"
    assert plain_message(ValueError(f"bad file {aside}. Use another"), "Loading") == (
        "Loading: bad file. Use another"
    )
    assert plain_message(ValueError("short (kept) aside"), "X") == "X: short (kept) aside"
