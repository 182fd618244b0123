"""The annotator's keyboard shortcuts and their binding on the napari viewer.

Shift + letter keys, none of which a napari layer binds, so they work whichever layer is
selected (a layer's keymap would shadow the viewer's for the same key).
"""

from __future__ import annotations

from collections.abc import Callable

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


def bind_shortcuts(viewer, target: object) -> None:
    """Bind every shortcut on ``viewer`` to the method of ``target`` it names."""
    for key, (method, text) in SHORTCUTS.items():
        viewer.bind_key(key, _handler(target, method, text), overwrite=True)


def _handler(target: object, method: str, text: str) -> Callable[[object], None]:
    def handler(_viewer=None) -> None:
        getattr(target, method)()

    # napari shows a binding's name and docstring in its shortcut list
    handler.__name__ = method
    handler.__doc__ = text
    return handler
