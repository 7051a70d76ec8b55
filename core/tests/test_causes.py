"""A failure's reason is one line naming the innermost cause (issue 17)."""

from __future__ import annotations

import pytest
from sextant.causes import innermost, one_line
from sextant.errors import StepError


def _raised(fn):
    with pytest.raises(BaseException) as info:
        fn()
    return info.value


def test_a_wrapped_error_is_told_by_its_innermost_cause():
    def wrapped():
        try:
            try:
                raise KeyError("transformers.modeling_outputs.BaseModelOutput")
            except KeyError as exc:
                raise ValueError("pytree deserialization failed") from exc
        except ValueError:
            raise RuntimeError("We ran into an error when deserializing the saved file.\nSee above.")  # noqa: B904 - as torch does

    exc = _raised(wrapped)
    assert isinstance(innermost(exc), KeyError)
    assert one_line(exc) == "KeyError: 'transformers.modeling_outputs.BaseModelOutput'"


def test_an_error_quoting_the_one_it_wraps_is_told_by_the_quoted_line():
    text = (
        "The following operation failed in the TorchScript interpreter.\n"
        "Traceback of TorchScript, serialized code (most recent call last):\n"
        '  File "code/__torch__/torch/nn/utils/parametrize.py", line 22, in forward\n'
        '    ops.prim.RaiseException(_0, "builtins.RuntimeError")\n'
        "builtins.RuntimeError: Parametrization is not working with scripting.\n"
    )
    assert one_line(RuntimeError(text)) == "RuntimeError: Parametrization is not working with scripting."


def test_plain_suppressed_and_sextant_errors():
    assert one_line(ValueError("bad shape\nmore detail")) == "ValueError: bad shape"
    assert one_line(MemoryError()) == "MemoryError"

    def suppressed():
        try:
            raise KeyError("inner")
        except KeyError:
            raise TypeError("outer") from None

    assert one_line(_raised(suppressed)) == "TypeError: outer"

    def ours():
        try:
            raise OSError("disk")
        except OSError as exc:
            raise StepError("the export wrote nothing") from exc

    assert one_line(_raised(ours)).startswith("StepError: the export wrote nothing")
