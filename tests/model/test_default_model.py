"""The default model is named in one place: the registry's `DEFAULT_MODEL`."""

import ast
from pathlib import Path

import napari_samed2
from napari_samed2.model import DEFAULT_MODEL, REGISTRY

PACKAGE = Path(napari_samed2.__file__).parent


def test_the_default_model_is_in_the_registry():
    assert DEFAULT_MODEL in REGISTRY
    assert REGISTRY[DEFAULT_MODEL].name == DEFAULT_MODEL


def test_code_outside_the_registry_names_the_default_model_only_through_the_constant():
    # Prose (docstrings, help text) may mention the model; a string equal to the name is code.
    named = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "model" / "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and node.value == DEFAULT_MODEL:
                named.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert named == [], f"use model.DEFAULT_MODEL instead of the literal at {named}"
