"""Triton Model Navigator's side of benchmarks/vs_navigator.py, run by the Python of Navigator's own
environment (``.venv-navigator``).

    run.py optimize EXAMPLE WORKSPACE RESULT [--profile JSON] [--fp32]
    run.py time EXAMPLE WORKSPACE BATCH SEED WINDOWS WINDOW_S

``optimize`` calls ``nav.torch.optimize(model, samples, target_device=CPU, workspace=...)`` on
``examples/EXAMPLE.py``'s model and samples (the samples as torch tensors: Navigator's dataloader)
and writes RESULT (JSON): the seconds ``optimize`` took, its pick (``package.get_best_runtime()``:
model key, format, runner, the pick's own profile), every (model, runner)'s correctness and
performance status, or the error that stopped it. ``--profile`` gives ``OptimizationProfile``
fields (default: Navigator's defaults). ``--fp32`` turns off the autocast of its torch runners
(``TorchConfig``, ``TorchScriptConfig``, ``TorchExportConfig`` with ``autocast=False``): by default
they run under ``torch.autocast``, which on CPU is bfloat16.

``time`` loads the package from WORKSPACE (``nav.package.load_from_workspace``, the source model
given back with ``load_source_model`` for a pick that runs it), takes its runner
(``package.get_runner(device="cpu")``), checks its outputs against eager torch on fresh inputs and
times it (``measure.seconds_per_call``); prints one JSON document.

What Navigator 0.14.0 needs on a machine with no GPU, done here before it is imported:

- ``torch.cuda.synchronize`` is a no-op: its torch runners call it unconditionally after every
  timed step (``InferenceStepTimer`` callbacks in ``model_navigator/runners/torch.py``), which
  raises without CUDA;
- ``NAVIGATOR_USE_MULTIPROCESSING=False``: its commands then run in this process (where the patch
  holds) instead of child processes it spawns.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

os.environ["NAVIGATOR_USE_MULTIPROCESSING"] = "False"

import torch  # noqa: E402

torch.cuda.synchronize = lambda *args, **kwargs: None

import measure  # noqa: E402
import model_navigator as nav  # noqa: E402


def to_torch(sample):
    if isinstance(sample, dict):
        return {k: torch.from_numpy(v) for k, v in sample.items()}
    return torch.from_numpy(sample)


def optimize(name: str, workspace: str, result_path: str, profile: str | None, fp32: bool) -> None:
    ex = measure.example(name)
    model = ex.build()
    dataloader = [to_torch(s) for s in ex.samples()]
    result: dict = {}
    start = time.perf_counter()
    try:
        package = nav.torch.optimize(
            model,
            dataloader,
            target_device=nav.DeviceKind.CPU,
            workspace=workspace,
            optimization_profile=nav.OptimizationProfile(**json.loads(profile)) if profile else None,
            custom_configs=[
                nav.TorchConfig(autocast=False),
                nav.TorchScriptConfig(autocast=False),
                nav.TorchExportConfig(autocast=False),
            ]
            if fp32
            else None,
        )
    except Exception as exc:  # noqa: BLE001 - what stopped Navigator is the result here
        result["seconds"] = time.perf_counter() - start
        result["error"] = "".join(traceback.format_exception_only(exc)).strip()[-2000:]
        write(result_path, result)
        raise
    result["seconds"] = time.perf_counter() - start
    result["statuses"] = [
        {
            "model": key,
            "format": status.model_config.format.value,
            "runner": runner,
            "status": {command: value.value for command, value in rs.status.items()},
        }
        for key, status in package.status.models_status.items()
        for runner, rs in status.runners_status.items()
    ]
    try:
        best = package.get_best_runtime()
    except Exception as exc:  # noqa: BLE001 - no pick is a result too
        result["error"] = f"no pick: {exc}"
    else:
        perf = best.runner_status.result.get("Performance", {})
        config = getattr(best.model_status.model_config, "runner_config", None)
        result["pick"] = {
            "runner_config": config.to_dict(parse=True) if config else {},
            "model": best.model_status.model_config.key,
            "format": best.model_status.model_config.format.value,
            "runner": best.runner_status.runner_name,
            "throughput": best.throughput,
            "profile": [
                {"batch": r.batch_size, "throughput": r.throughput, "p50_ms": r.p50_latency}
                for r in perf.get("profiling_results", [])
            ],
        }
    write(result_path, result)


def write(path: str, result: dict) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


def time_pick(name: str, workspace: str, batch: int, seed: int, windows: int, window_s: float) -> None:
    from model_navigator.configuration import Framework
    from model_navigator.core.dataloader import extract_sample

    ex = measure.example(name)
    model = ex.build()
    package = nav.package.load_from_workspace(workspace)
    package.load_source_model(model)
    inputs = measure.fresh_inputs(ex.samples()[0], batch, seed)
    feed = extract_sample(to_torch(inputs), package.status.input_metadata, Framework.TORCH)
    reference = measure.eager(model, inputs)
    runner = package.get_runner(device="cpu")
    with runner:
        got = measure.flatten(runner.infer(feed))
        seconds = measure.seconds_per_call(lambda: runner.infer(feed), windows, window_s)
    print(json.dumps(measure.result(got, reference, seconds)))


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "optimize":
        profile = args[args.index("--profile") + 1] if "--profile" in args else None
        optimize(*args[:3], profile, "--fp32" in args)
    elif command == "time":
        name, workspace, batch, seed, windows, window_s = args
        time_pick(name, workspace, int(batch), int(seed), int(windows), float(window_s))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
