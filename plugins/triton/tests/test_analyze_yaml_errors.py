"""An analyze.yaml's errors name the file that was given, not "analyze.yaml"."""

from __future__ import annotations

import pytest
from sextant.api import UsageError
from sextant_triton.analyze.settings import read_file


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("serch: quick\n", "unknown key serch"),
        ("measurement: {interval: 5}\n", "measurement: unknown key interval"),
    ],
)
def test_an_unknown_key_names_the_file_given(tmp_path, text, said):
    path = tmp_path / "serving-space.yml"
    path.write_text(text)
    with pytest.raises(UsageError) as raised:
        read_file(path)
    assert raised.value.message == f"{path}: {said}"
    assert "analyze.yaml" not in raised.value.message
