"""The built wheel carries the manifest, the entry points and the embedded weights."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    (path,) = out.glob("napari_samed2-*.whl")
    return path


def test_wheel_has_manifest_entry_points_and_console_script(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
        manifest = archive.read("napari_samed2/napari.yaml")
    assert "[napari.manifest]" in text and "napari-samed2 = napari_samed2:napari.yaml" in text
    assert "samed2 = napari_samed2.cli:main" in text
    (tmp_path / "napari.yaml").write_bytes(manifest)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("npe2")), "validate", str(tmp_path / "napari.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wheel_ships_the_embedded_model_when_it_exists(wheel):
    weights = ROOT / "src/napari_samed2/weights/samed2-nano.safetensors"
    if not weights.exists():
        pytest.skip("embedded weights not trained yet")
    with zipfile.ZipFile(wheel) as archive:
        info = archive.getinfo("napari_samed2/weights/samed2-nano.safetensors")
    assert info.file_size == weights.stat().st_size


def test_cli_lists_models_from_a_subprocess():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("samed2")), "models"],
        capture_output=True,
        text=True,
        check=True,
    )
    for name in ("samed2-nano (default)", "sam2.1-large", "samed2", "medsam2"):
        assert name in result.stdout
    assert "manual" in result.stdout and "bundled" in result.stdout
