"""Small package folders written by hand: one candidate of any format and runner, with a profile.

They let the deployer be tested on every backend kind (TensorRT engines, SavedModels, GPU devices)
without the frameworks: the deployer reads status.json and copies the artifact, nothing more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sextant.api import write_manifest

SIGNATURE = {
    "inputs": [
        {"name": "pixels", "dtype": "float32", "shape": [None, 3, None, 8], "batched": True},
        {"name": "mask", "dtype": "int64", "shape": [None, 8], "batched": True},
    ],
    "outputs": [
        {"name": "logits", "dtype": "float32", "shape": [None, 5], "batched": True},
        {"name": "score", "dtype": "float16", "shape": [None], "batched": True},
    ],
    "call_style": "keyword",
    "max_batch": None,
    "notes": [],
}

POINTS = [  # throughput peaks at batch 16, batch 8 within 10 %
    {"batch": 1, "p50_ms": 0.5, "p99_ms": 0.9, "throughput": 2000.0, "memory_mb": 100.0},
    {"batch": 2, "p50_ms": 0.6, "p99_ms": 1.0, "throughput": 3300.0, "memory_mb": 100.0},
    {"batch": 4, "p50_ms": 0.8, "p99_ms": 1.2, "throughput": 5000.0, "memory_mb": 101.0},
    {"batch": 8, "p50_ms": 1.1, "p99_ms": 1.6, "throughput": 7300.0, "memory_mb": 102.0},
    {"batch": 16, "p50_ms": 2.0, "p99_ms": 2.6, "throughput": 8000.0, "memory_mb": 104.0},
]

#: artifact file (or folder, ending in /) of each format, as sextant's plugins name them
ARTIFACTS = {
    "onnx": "model.onnx",
    "torchscript": "model.pt",
    "torch-module": "model.pt",
    "torch-exported": "model.pt2",
    "tf-savedmodel": "saved_model/",
    "tensorrt-engine": "model.plan",
    "openvino-ir": "model.xml",
}


def write_package(
    folder: Path,
    *,
    format: str,
    runner: str,
    device: str = "cpu",
    precision: str = "fp32",
    options: dict[str, Any] | None = None,
    threads: int = 4,
    host_threads: int = 8,
    signature: dict[str, Any] | None = None,
    points: list[dict[str, Any]] | None = None,
    selected: bool = True,
    name: str = "tiny",
    stopped: str = "reached max batch 16",
    checked: tuple[int, ...] = (2, 1, 16),
) -> Path:
    """A package with one candidate ``<step>:<runner>@<device>``; returns the folder."""
    signature = signature or SIGNATURE
    step = "source" if format in ("torch-module",) else f"export-{format}"
    cid = f"{step}:{runner}@{device}"
    artifact = ARTIFACTS[format]
    rel = f"source/{artifact}" if step == "source" else f"artifacts/{step}-0123456789/{artifact}"
    path = folder / rel.rstrip("/")
    if artifact.endswith("/"):
        (path / "variables").mkdir(parents=True)
        (path / "saved_model.pb").write_bytes(b"saved model " + format.encode())
    else:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"artifact bytes of " + format.encode())
    rng = np.random.default_rng(0)
    sample = {}
    for spec in signature["inputs"]:
        shape = [2 if size is None else size for size in spec["shape"]]
        sample[spec["name"]] = (rng.standard_normal(shape) * 3).astype(spec["dtype"])
    np.savez(folder / "samples.npz", **sample)
    record = {
        "step": step,
        "format": format,
        "runner": runner,
        "plugin": "sextant-fake 0.1.0",
        "device": device,
        "precision": precision,
        "options": options or {},
        "status": "ok",
        "artifact": rel.rstrip("/"),
        "profile": {"points": points if points is not None else POINTS, "threads": threads, "stopped": stopped},
    }
    status = {
        "schema": 1,
        "sextant": "0.1.0",
        "model": {"name": name, "format": format},
        "host": {"threads": host_threads, "devices": ["cpu", "cuda"], "machine": "x86_64"},
        "signature": signature,
        "correctness_batches": list(checked),
        "selection": {"best": cid if selected else None, "ranking": [cid] if selected else []},
        "candidates": {cid: record},
    }
    if not selected:
        status["selection"]["reason"] = "every candidate failed the latency budget"
    (folder / "status.json").write_text(json.dumps(status, indent=2))
    write_manifest(folder)  # as a run does when it ends
    return folder
