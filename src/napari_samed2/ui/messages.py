"""Turn exceptions into one plain sentence for a napari notification."""

from __future__ import annotations


def plain_message(error: BaseException, context: str) -> str:
    """``"<context>: <what went wrong>"`` with a hint for the errors users can fix themselves."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, KeyError):
        text = text.strip("'\"")
    lowered = text.lower()
    if isinstance(error, MemoryError) or "out of memory" in lowered:
        text = (
            f"{text}. The device ran out of memory: try the CPU, a smaller model, "
            "or a smaller image."
        )
    return f"{context}: {text}"
