"""The user's list of fine-tuned models: kept beside the cache, atomic, forgiving to read."""

import json

from napari_samed2.model.user_models import (
    UserModel,
    add_user_model,
    user_models,
    user_models_path,
)


def test_models_are_recorded_once_per_file_and_missing_files_are_not_listed(tmp_path):
    model = tmp_path / "a.safetensors"
    model.write_bytes(b"x")
    add_user_model(UserModel("a", str(model), "samed2-nano", heldout_dice=0.5), tmp_path)
    add_user_model(UserModel("a2", str(model), "samed2-nano", heldout_dice=0.7), tmp_path)
    add_user_model(UserModel("b", str(tmp_path / "b.safetensors"), "samed2-nano"), tmp_path)
    assert [(m.name, m.heldout_dice) for m in user_models(tmp_path)] == [("a2", 0.7)]
    assert [m.name for m in user_models(tmp_path, existing=False)] == ["a2", "b"]
    stored = json.loads(user_models_path(tmp_path).read_text())
    assert stored["version"] == 1 and len(stored["models"]) == 2


def test_an_unreadable_list_reads_as_empty_and_is_replaced_on_the_next_record(tmp_path, caplog):
    user_models_path(tmp_path).write_text("{not json")
    assert user_models(tmp_path) == []
    assert "unreadable" in caplog.text
    model = tmp_path / "c.safetensors"
    model.write_bytes(b"x")
    add_user_model(UserModel("c", str(model), "sam2.1-tiny"), tmp_path)
    assert [m.name for m in user_models(tmp_path)] == ["c"]
