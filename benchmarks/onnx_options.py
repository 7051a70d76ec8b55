"""ONNX Runtime: the best configuration sextant finds for an .onnx file against ONNX Runtime's
defaults on the same file, and what measuring the option variants cost.

    python benchmarks/onnx_options.py [--example resnet] [--precision fp32|auto] [--repeat 3]

Exports the example to ONNX (random weights), runs `sextant optimize model.onnx` with no samples,
and prints, per run, the best candidate's throughput and its ratio to `source:onnxruntime@cpu`
(ORT defaults, measured in the same run), and the seconds spent on option-variant candidates.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
from pathlib import Path

import torch
from _run import ROOT, optimize


def export(example: str, path: Path) -> None:
    spec = importlib.util.spec_from_file_location(example, ROOT / "examples" / f"{example}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, sample = module.build(), module.samples()[0]
    torch.onnx.export(
        model,
        (torch.from_numpy(sample),),
        str(path),
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--example", default="resnet")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ratios, variant_costs, totals = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / f"{args.example}.onnx"
        export(args.example, model)
        for i in range(args.repeat):
            seconds, doc = optimize(str(model), Path(tmp) / f"ws{i}", "--precision", args.precision)
            totals.append(seconds)
            best = doc["candidates"][doc["selection"]["best"]]
            base = doc["candidates"]["source:onnxruntime@cpu"]["best_point"]
            ratios.append(best["best_point"]["throughput"] / base["throughput"])
            variant_costs.append(sum(r.get("seconds", 0) or 0 for c, r in doc["candidates"].items() if "[" in c))
            print(
                f"run {i}: best {doc['selection']['best']} {best['best_point']['throughput']:,.0f}/s vs ORT defaults "
                f"{base['throughput']:,.0f}/s = {ratios[-1]:.2f}x; option variants cost {variant_costs[-1]:.1f} s of {totals[-1]:.1f} s"
            )
    print(
        f"median: {statistics.median(ratios):.2f}x ORT defaults (min {min(ratios):.2f}, max {max(ratios):.2f}); "
        f"variants {statistics.median(variant_costs):.1f} s of {statistics.median(totals):.1f} s"
    )


if __name__ == "__main__":
    main()
