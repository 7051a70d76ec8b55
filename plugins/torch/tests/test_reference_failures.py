"""A source model that fails as a reference is explained by calling it where the user does (issue 30):
it fails in the user's process too (at the samples' batch size or another), or only where sextant
ran it, from the saved model."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import sextant
import torch
from sextant.errors import SampleError
from torch import nn


class BornHere(nn.Module):
    """Runs only in the process that built it: something a saved model cannot carry."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.pid = os.getpid()

    def forward(self, x):
        if os.getpid() != self.pid:
            raise RuntimeError("state of the building process is missing")
        return self.linear(x)


class SmallBatches(nn.Module):
    """Takes at most 3 rows."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        if x.shape[0] > 3:
            raise ValueError(f"at most 3 rows, got {x.shape[0]}")
        return self.linear(x)


def _optimize(model: nn.Module, x: np.ndarray, catalog, options):
    options = replace(options, runners=("torch-eager",), max_batch_size=4)  # correctness at batch sizes [2, 1, 4]
    return sextant.optimize(model.eval(), x, options=options, catalog=catalog)


def test_a_reference_that_fails_only_where_sextant_runs_it_says_so(catalog, options):
    x = np.ones((2, 4), np.float32)
    with pytest.raises(SampleError) as caught:
        _optimize(BornHere(), x, catalog, options)
    message = caught.value.message
    assert message.startswith("the source model runs the correctness inputs (batch sizes [2, 1, 4]) in this process")
    assert "in this process, but failed where sextant ran it" in message
    assert "RuntimeError: state of the building process is missing" in message
    assert "--max-batch-size" not in caught.value.hint and "report it" in caught.value.hint


def test_a_reference_that_fails_at_the_largest_batch_names_that_batch_size(catalog, options):
    x = np.ones((2, 4), np.float32)
    with pytest.raises(SampleError) as caught:
        _optimize(SmallBatches(), x, catalog, options)
    message = caught.value.message
    assert "runs the samples (batch size 2) but fails at batch size 4, in this process too" in message
    assert "ValueError: at most 3 rows, got 4" in message
    assert "--max-batch-size 2" in caught.value.hint


def test_a_reference_that_fails_on_the_samples_says_they_fail_here_too(catalog, options):
    x = np.ones((4, 4), np.float32)  # more rows than the model takes
    with pytest.raises(SampleError) as caught:
        _optimize(SmallBatches(), x, catalog, options)
    assert caught.value.message.startswith("the source model fails on the samples as given (batch size 4)")
    assert "sextant passes x" in caught.value.hint or "sextant passes input_0" in caught.value.hint


class TwoInputs(nn.Module):
    def forward(self, image, scale):
        return image * scale


def test_samples_named_otherwise_than_forward_say_what_forward_takes(catalog, options):
    samples = {"pixels": np.ones((2, 3), np.float32), "factor": np.ones((2, 1), np.float32)}
    with pytest.raises(SampleError) as caught:
        _optimize(TwoInputs(), samples, catalog, options)
    assert "fails on the samples as given (batch size 2), in this process too: TypeError:" in caught.value.message
    assert "(TwoInputs.forward takes image, scale)" in caught.value.message
    assert "sextant passes pixels, factor" in caught.value.hint


def test_a_packages_own_samples_file_feeds_the_same_model_again(catalog, options, tmp_path):
    """sextant writes positional samples as input_0, input_1, ...: read back, they are positional."""
    image, scale = np.ones((2, 3), np.float32), np.full((2, 1), 2, np.float32)
    first = _optimize(TwoInputs(), (image, scale), catalog, options)
    again = replace(options, workspace=tmp_path / "again")
    second = _optimize(TwoInputs(), str(first.path / "samples.npz"), catalog, again)
    assert second.status["signature"]["call_style"] == "positional"
    assert second.status["candidates"]["source:torch-eager@cpu"]["status"] == "ok"
