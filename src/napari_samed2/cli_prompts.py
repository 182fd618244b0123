"""Prompts typed on the command line (``--point``, ``--negative``, ``--box``) read into `Prompt`."""

from __future__ import annotations

import re

from .pipeline import Prompt

PROMPT_TEXT = re.compile(r"^\s*([-\d.,\s]+?)\s*(?:@\s*([-+]?\d+))?\s*$")


def parse_prompt(kind: str, text: str) -> Prompt:
    """Parse ``"FRAME,ROW,COL[@OBJ]"`` (points) or ``"FRAME,ROW0,COL0,ROW1,COL1[@OBJ]"`` (box)."""
    match = PROMPT_TEXT.match(text)
    if not match:
        raise ValueError(f"cannot read {kind} prompt {text!r}; expected e.g. '12,40,55@2'")
    try:
        numbers = [float(part) for part in match.group(1).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"cannot read {kind} prompt {text!r}: not numbers") from None
    if not numbers or numbers[0] != int(numbers[0]):
        raise ValueError(f"{kind} prompt {text!r} must start with an integer frame index")
    return Prompt(kind, int(numbers[0]), int(match.group(2) or 1), tuple(numbers[1:]))
