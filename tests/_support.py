"""Helpers shared by the cross-distribution tests (a module, not conftest: several conftests meet here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-batch-size", "4", "--batch-budget-s", "0.2", "--window-ms", "5"]


def sextant(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from sextant.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=900,
    )


def mlp_args(workspace: Path, *extra: str) -> list[str]:
    """`sextant optimize` of the bundled MLP example into ``workspace``, with a short profiler."""
    return [
        "optimize",
        "examples/mlp.py:build",
        "--samples",
        "examples/mlp.py:samples",
        "-w",
        str(workspace),
        *extra,
        "--json",
        *FAST,
    ]


#: optimize_pipeline settings of the real-library pipeline tests: few candidates (one ONNX exporter,
#: no conversions), a short profiler, and what serves not depending on timings
PIPELINE_OPTIONS = {
    "runners": ("torch-eager", "onnxruntime"),
    "steps": ("torch-onnx-legacy",),
    "max_batch_size": 4,
    "repeats": 1,
    "timed_choice": False,
    "cutoff": 0.0,  # every candidate swept in full: the ranking the tests read never depends on timings
    "paired_rounds": 0,  # no paired re-measurement of the pick (its own tests: core/tests/test_pairing.py)
}


def tiny_t5(heads: int = 4):
    """A random 2-layer T5 whose greedy outputs vary (a large initializer factor: at the default
    scale a random T5 repeats one token, which would make a comparison weak)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(3)
    config = T5Config(
        vocab_size=64,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=heads,
        initializer_factor=8.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5ForConditionalGeneration(config).eval()
