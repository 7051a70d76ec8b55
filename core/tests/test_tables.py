"""Rendering records: the table, the reasons, and a summary line that names the ★ candidate exactly."""

import io

from rich.console import Console
from sextant.cli import tables as report

STATUS = {
    "model": {"name": "mlp"},
    "selection": {"objective": "throughput", "best": "onnx:onnxruntime[intra_op_threads=1]@cpu"},
    "steps": {
        "torch-onnx": {
            "kind": "exporter",
            "spec": "torch-onnx",
            "plugin": "p",
            "from": "source",
            "format": "onnx",
            "precision": "fp32",
            "device": "cpu",
            "key": "k",
            "status": "ok",
        },
        "torch-script": {
            "kind": "exporter",
            "spec": "torch-script",
            "plugin": "p",
            "from": "source",
            "format": "torchscript",
            "precision": "fp32",
            "device": "cpu",
            "key": "k",
            "status": "failed",
            "cause": "exception",
            "reason": "RuntimeError: no source for __init__",
        },
    },
    "candidates": {
        "onnx:onnxruntime[intra_op_threads=1]@cpu": {
            "step": "torch-onnx",
            "format": "onnx",
            "runner": "onnxruntime",
            "plugin": "p",
            "device": "cpu",
            "precision": "fp32",
            "options": {"intra_op_threads": 1},
            "status": "ok",
            "correctness": {"passed": True, "outputs": [{"max_abs_error": 2.5e-7}], "atol": 1e-4, "rtol": 1e-3},
            "best_point": {"batch": 64, "throughput": 92261.0, "p50_ms": 0.681, "p99_ms": 0.807},
            "speedup": 1.53,
        },
        "source:torch-eager@cpu": {
            "step": "source",
            "format": "torch-module",
            "runner": "torch-eager",
            "plugin": "p",
            "device": "cpu",
            "precision": "fp32",
            "options": {},
            "status": "incorrect",
            "reason": "correctness: output 'y' off",
        },
    },
}


def render(renderable) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_summary_line_keeps_the_options_of_the_best_candidate():
    text = render(report.summary_line(STATUS, "ws/mlp"))
    assert "best: onnx:onnxruntime[intra_op_threads=1]@cpu — 92,261/s at batch 64, p50 0.681 ms, 1.53×" in text


def test_results_table_shows_the_winner_errors_and_failed_steps():
    text = render(report.results_table(STATUS))
    assert "★ onnx:onnxruntime[intra_op_threads=1]@cpu" in text
    assert "2.5e-07" in text and "92,261" in text and "1.53×" in text
    assert "torch-script (step)" in text and "torch-onnx (step)" not in text


def test_reasons_name_each_failure_once():
    lines = [render(line) for line in report.reasons(STATUS)]
    assert len(lines) == 2
    assert any("torch-script" in line and "no source for __init__" in line for line in lines)
    assert any("source:torch-eager@cpu" in line and "incorrect" in line for line in lines)
