"""Opening something that is not a package says what it is: a missing folder, a pipeline workspace."""

from __future__ import annotations

import json

import pytest
from sextant.errors import PackageError
from sextant.package import read_status


def test_a_path_that_does_not_exist_is_no_such_folder(tmp_path):
    with pytest.raises(PackageError) as raised:
        read_status(tmp_path / "nowhere")
    assert raised.value.message == f"{tmp_path / 'nowhere'}: no such folder"


def test_a_pipeline_workspace_points_to_its_parts(tmp_path):
    (tmp_path / "pipeline.json").write_text("{}")
    part = tmp_path / "parts" / "unet-0123"
    part.mkdir(parents=True)
    (part / "status.json").write_text(json.dumps({"schema": 1}))
    with pytest.raises(PackageError) as raised:
        read_status(tmp_path)
    assert "is a pipeline workspace" in raised.value.message
    assert str(part) in raised.value.hint and "optimize first" not in raised.value.hint


def test_an_empty_folder_is_still_not_a_package(tmp_path):
    with pytest.raises(PackageError) as raised:
        read_status(tmp_path)
    assert "is not a sextant package (no status.json)" in raised.value.message
