"""Turn exceptions into one plain sentence for a napari notification."""

from __future__ import annotations

import re

# a parenthesis this long is a library's own explanation (torch's unpickling advice, ...):
# the notification keeps our sentence; the full text stays in the exception
LONG_ASIDE = re.compile(r"\s*\([^()]{100,}\)")


def plain_message(error: BaseException, context: str) -> str:
    """``"<context>: <what went wrong>"`` with a hint for the errors users can fix themselves."""
    # str(KeyError) is the repr of its message; the message itself reads better
    raw = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    text = LONG_ASIDE.sub("", str(raw).strip()) or type(error).__name__
    lowered = text.lower()
    if isinstance(error, MemoryError) or "out of memory" in lowered:
        text = (
            f"{text}. The device ran out of memory: try the CPU, a smaller model, "
            "or a smaller image."
        )
    return f"{context}: {text}"
