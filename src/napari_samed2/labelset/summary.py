"""What a label set holds, in numbers (`samed2 labelset info`): entries, complete frames,
objects, masks and their origins, frame shapes, sources, bytes on disk.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .format import SOURCE_FIELDS, source_key

if TYPE_CHECKING:
    from .store import LabelSet


def summarise(labelset: LabelSet) -> dict[str, Any]:
    """Counts for `samed2 labelset info`: entries, objects, complete frames, sources,
    frame shapes, origins, referenced frames and bytes on disk."""
    entries = labelset.entries()
    sources: collections.Counter = collections.Counter()
    objects: set = set()
    for entry in entries:
        key = source_key(entry.source)
        sources[key] += 1
        objects.update((key, obj_id) for obj_id in entry.object_ids)
    shapes = collections.Counter(
        "x".join(map(str, e.shape)) + (f"x{e.channels}" if e.channels else "") + f" {e.dtype}"
        for e in entries
    )
    return {
        "path": str(labelset.path),
        "name": labelset.name,
        "version": labelset.version,
        "created": labelset.manifest.get("created"),
        "entries": len(entries),
        "complete": sum(e.complete for e in entries),
        "masks": sum(len(e.objects) for e in entries),
        "objects": len(objects),
        "origins": dict(collections.Counter(o.origin for e in entries for o in e.objects)),
        "referenced": sum(e.reference is not None for e in entries),
        "shapes": dict(shapes),
        "sources": [
            dict(zip(SOURCE_FIELDS, key, strict=True), frames=n) for key, n in sources.items()
        ],
        "bytes": _bytes_under(labelset.path),
    }


def _bytes_under(path: Path) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _dirs, files in os.walk(path)
        for name in files
    )
