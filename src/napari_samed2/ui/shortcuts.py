"""The annotator's keyboard shortcuts and their binding on the napari viewer.

Shift + letter keys, none of which a napari layer binds, so they work whichever layer is
selected (a layer's keymap would shadow the viewer's for the same key).

Another plugin's binding of the same key wins: a key already bound on the viewer by someone
else is left alone (and logged), and a key another plugin binds after us is theirs. When the
widget closes, its keys are unbound, but only where the binding is still the widget's own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from napari.utils.key_bindings import coerce_keybinding

logger = logging.getLogger(__name__)

# key -> (name of the widget method it calls, what it does)
SHORTCUTS: dict[str, tuple[str, str]] = {
    "Shift-S": ("segment_frame", "segment the selected object on this frame"),
    "Shift-F": ("propagate_forward", "propagate forward"),
    "Shift-B": ("propagate_backward", "propagate backward"),
    "Shift-D": ("propagate_both", "propagate both ways"),
    "Shift-X": ("stop", "stop propagation"),
    "Shift-C": ("accept_correction", "accept my correction and re-propagate"),
    "Shift-W": ("next_weak_frame", "go to the next low-confidence frame"),
}
# bound on the annotator's Points layer only
POINTS_SHORTCUTS: dict[str, tuple[str, str]] = {
    "t": ("_toggle_sign", "toggle the sign (+/−) of new points"),
}

# bound on the Labels layer while a run writes into it: an undo then would pull the labels
# from under the run (napari's own Ctrl-Z works again when the run ends)
RUN_UNDO_GUARD: dict[str, tuple[str, str]] = {
    "Control-Z": ("_undo_during_run", "undo (waits for the running job)"),
    "Control-Shift-Z": ("_undo_during_run", "redo (waits for the running job)"),
}

_OURS = "_napari_samed2_shortcut"  # marks our handlers, so a later widget may replace them


def bind_shortcuts(owner, target: object, shortcuts=None) -> dict[str, Callable]:
    """Bind ``shortcuts`` (default `SHORTCUTS`) on ``owner`` (a viewer or a layer) to the
    methods of ``target`` they name; returns the handlers bound, for `unbind_shortcuts`.

    A key already bound on ``owner`` by someone else (another plugin) keeps that binding.
    """
    bound = {}
    for key, (method, text) in (SHORTCUTS if shortcuts is None else shortcuts).items():
        existing = owner.keymap.get(coerce_keybinding(key))
        if existing is not None and not getattr(existing, _OURS, False):
            logger.info("%s is bound by %r already; SAMed-2 leaves it alone", key, existing)
            continue
        handler = _handler(target, method, text)
        owner.bind_key(key, handler, overwrite=True)
        bound[key] = handler
    return bound


def unbind_shortcuts(owner, handlers: dict[str, Callable]) -> None:
    """Unbind ``handlers`` (from `bind_shortcuts`) from ``owner`` where they are still bound."""
    for key, handler in handlers.items():
        if owner.keymap.get(coerce_keybinding(key)) is handler:
            owner.bind_key(key, None)


def _handler(target: object, method: str, text: str) -> Callable[[object], None]:
    def handler(_owner=None) -> None:
        getattr(target, method)()

    # napari shows a binding's name and docstring in its shortcut list
    handler.__name__ = method
    handler.__doc__ = text
    setattr(handler, _OURS, True)
    return handler
