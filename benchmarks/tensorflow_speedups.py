"""Speedups of every candidate over the baseline (Keras eager for Keras sources, the SavedModel
graph for SavedModel folders), on this machine.

    python benchmarks/tensorflow_speedups.py [--repeat N]

Sources: the bundled Keras CNN (examples/keras_cnn.py, a factory), and a MobileNetV2 (alpha 0.35,
96x96, random weights) saved first as a .keras file and as a SavedModel folder (keras'
model.export). Each run is a full default `sextant optimize` in a fresh workspace; the table gives,
per candidate, the median of its best throughput over the baseline's and of its throughput at batch
1 over the baseline's there (each ratio taken within one run), with min and max, and the run's wall
time. Candidates stopped early by the cutoff (status "cutoff") have a best throughput from small
batches only: compare them at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import sextant
from _run import optimize


def _batch_1(record) -> float:
    return next(p.throughput for p in record.profile.points if p.batch == 1)


def mobilenet(folder: Path) -> tuple[Path, Path]:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=100)
    model.save(folder / "mobilenet.keras")
    model.export(str(folder / "mobilenet_savedmodel"), verbose=False)
    return folder / "mobilenet.keras", folder / "mobilenet_savedmodel"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        keras_file, savedmodel = mobilenet(Path(tmp))
        sources = {
            "keras_cnn (factory)": ["examples/keras_cnn.py:build", "--samples", "examples/keras_cnn.py:samples"],
            "mobilenet_v2 .keras": [str(keras_file)],
            "mobilenet_v2 SavedModel": [str(savedmodel)],
        }
        for label, argv in sources.items():
            ratios: dict[str, list[float]] = defaultdict(list)
            at_1: dict[str, list[float]] = defaultdict(list)
            walls, best = [], []
            for index in range(args.repeat):
                workspace = Path(tmp) / f"ws-{label.split()[0]}-{index}"
                wall, _ = optimize(argv[0], workspace, *argv[1:])
                walls.append(wall)
                doc = sextant.load(workspace).document
                baseline = doc.candidates[doc.baseline]
                base, base_1 = baseline.best_point.throughput, _batch_1(baseline)
                for cid, record in doc.candidates.items():
                    if record.best_point:
                        ratios[cid].append(record.best_point.throughput / base)
                        at_1[cid].append(_batch_1(record) / base_1)
                best.append(doc.best)
            print(f"\n{label}: baseline {doc.baseline}, wall {statistics.median(walls):.1f} s, best {best}")
            print(f"  {'candidate':60s} {'best throughput':>28s}   {'at batch 1':>26s}")
            for cid, values in sorted(ratios.items(), key=lambda kv: -statistics.median(kv[1])):
                one = at_1[cid]
                print(
                    f"  {cid:60s} {statistics.median(values):6.2f}x (min {min(values):5.2f}, max {max(values):5.2f})"
                    f"   {statistics.median(one):6.2f}x (min {min(one):5.2f}, max {max(one):5.2f})"
                )


if __name__ == "__main__":
    main()
