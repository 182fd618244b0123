"""What a light entry point imports: `samed2 --help` and the sample-data menu load no torch."""

import subprocess
import sys

import pytest

LIGHT_ENTRY_POINTS = {
    "the command's parser": "import napari_samed2.cli as cli; cli.build_parser()",
    "a sample from the menu": "from napari_samed2.ui import nuclei_volume_sample",
    "the registry": "from napari_samed2.model.registry import DEFAULT_MODEL, REGISTRY",
}


@pytest.mark.parametrize("code", LIGHT_ENTRY_POINTS.values(), ids=LIGHT_ENTRY_POINTS.keys())
def test_light_entry_points_do_not_import_torch(code):
    heavy = "('torch', 'napari_samed2.ui.widget')"
    check = f"{code}\nimport sys\nprint(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_names_still_resolve():
    from napari_samed2 import model, ui

    assert callable(model.load_model) and model.DEFAULT_MODEL == "samed2-nano"
    assert set(model.__all__) >= {"load_model", "ModelProfile", "profile_for", "build_model"}
    assert "SAMed2Widget" in ui.__all__
    with pytest.raises(AttributeError):
        model.no_such_name
