"""Export a label set as image/mask TIFF pairs (``OUT/images/NNNNNN.tif`` and
``OUT/masks/NNNNNN.tif``, dtypes kept): the layout cellpose, stardist and micro-sam train from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_path
from .format import entry_dirname
from .store import LabelSet
from .tiff import write_tiff


@dataclass
class ExportReport:
    """What an export wrote: one image and one mask per entry, and which entries were not
    complete (their masks' background may hide unlabelled objects)."""

    out_dir: Path
    images: list[Path] = field(default_factory=list)
    masks: list[Path] = field(default_factory=list)
    incomplete: list[int] = field(default_factory=list)


def export_pairs(
    labelset: LabelSet, out_dir: str | os.PathLike, entry_ids: Sequence[int] | None = None
) -> ExportReport:
    """Write each entry's image and labels as ``OUT/images/ID.tif`` and ``OUT/masks/ID.tif``
    (ID the entry id, six digits), each file atomically. `import_pairs` reads them back
    exactly.

    Raises
    ------
    ValueError
        The set (or the chosen ids) has no entries, or ``out_dir`` is inside the set.
    FileExistsError
        ``OUT/images`` or ``OUT/masks`` already holds files.
    """
    out = Path(out_dir)
    entries = labelset.entries()
    if entry_ids is not None:
        entries = [labelset.entry(i) for i in entry_ids]
    if not entries:
        raise ValueError(f"label set {str(labelset.path)!r} has no entries to export")
    if out.resolve() == labelset.path.resolve() or labelset.path.resolve() in out.resolve().parents:
        raise ValueError(f"export folder {str(out)!r} is inside the label set; choose another")
    folders = {name: out / name for name in ("images", "masks")}
    for folder in folders.values():
        if folder.is_dir() and any(folder.iterdir()):
            raise FileExistsError(
                f"{str(folder)!r} already holds files; export into a new or empty folder"
            )
        folder.mkdir(parents=True, exist_ok=True)
    report = ExportReport(out)
    for entry in entries:
        name = f"{entry_dirname(entry.id)}.tif"
        for kind, array, compress in (
            ("images", entry.image(), False),
            ("masks", entry.labels(), True),
        ):
            path = folders[kind] / name
            with atomic_path(path) as tmp:
                write_tiff(tmp, array, compress=compress)
            getattr(report, kind).append(path)
        if not entry.complete:
            report.incomplete.append(entry.id)
    return report
