"""End-to-end speed of a tiny random StableDiffusionPipeline optimized in place by sextant.

    python benchmarks/pipeline_speed.py [--runs N] [--steps S] [--size PIXELS] [--workspace DIR]

Builds a StableDiffusionPipeline with random weights in code (CLIP text encoder, UNet, VAE; no
download), wraps the three models in ``sextant.Module``, runs ``sextant.optimize_pipeline`` on two
prompts, then ``sextant.load_optimized``, and times the unchanged pipeline N times each way,
alternating original and optimized in this one process (``part.sextant.original()`` switches a
module back to its original while its choice stays loaded). Prints the CPU, what serves each
module, the end-to-end median time with its range and the speedup, and each module's time per run.
The images are checked against the original's first. Needs diffusers and transformers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import sextant
import torch


def cpu() -> str:
    """The CPU's model name and core count, from lscpu."""
    fields = {}
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return f"{fields.get('Model name', '?')}, {fields.get('CPU(s)', '?')} CPUs"


def build(folder: Path, size: int):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter], vocab[f"{letter}</w>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=32)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            max_position_embeddings=32,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=size // 4,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=16,
        sample_size=size,
    )
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} ms [{min(values):.1f}-{max(values):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workspace", type=Path)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    tmp = tempfile.TemporaryDirectory()
    workspace = args.workspace or Path(tmp.name) / "ws"
    pipe = build(Path(tmp.name) / "tokenizer", args.size)

    def run(prompt):
        generator = torch.Generator().manual_seed(0)
        return pipe(
            prompt,
            num_inference_steps=args.steps,
            guidance_scale=7.5,
            height=args.size,
            width=args.size,
            output_type="np",
            generator=generator,
        ).images

    prompts = ["a cat", "a red car"]
    reference = run(prompts[0])
    pipe.text_encoder = sextant.Module(pipe.text_encoder, name="text_encoder")
    pipe.unet = sextant.Module(pipe.unet, name="unet")
    pipe.vae = sextant.Module(
        pipe.vae,
        name="vae",
        forward="decode",
        input_mapping=lambda a, k: (a, {n: v for n, v in k.items() if n != "generator"}),
    )
    parts = [pipe.text_encoder, pipe.unet, pipe.vae]
    started = time.perf_counter()
    sextant.optimize_pipeline(run, prompts, workspace=workspace, modules=parts, runners=("torch-eager", "onnxruntime"))
    optimize_s = time.perf_counter() - started
    served = sextant.load_optimized(workspace, modules=parts, trust_source=True)
    worst = float(np.abs(run(prompts[0]) - reference).max())

    times: dict[str, dict[str, list[float]]] = {"original": {}, "optimized": {}}
    for _ in range(args.runs):
        for mode in ("original", "optimized"):
            with contextlib.ExitStack() as stack:
                if mode == "original":
                    for part in parts:
                        stack.enter_context(part.sextant.original())
                for part in parts:
                    part.sextant.start_timing()
                begin = time.perf_counter()
                run(prompts[1])
                total = (time.perf_counter() - begin) * 1e3
                times[mode].setdefault("pipeline", []).append(total)
                for part in parts:
                    times[mode].setdefault(part.sextant.name, []).append(sum(part.sextant.stop_timing()) * 1e3)

    print(f"CPU: {cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"pipeline: {args.size}x{args.size}, {args.steps} DDIM steps, guidance 7.5 (UNet batch 2), "
        f"optimize_pipeline took {optimize_s:.0f} s; images max |diff| {worst:.2g} vs the original's"
    )
    for name, structures in served.items():
        for label in structures.values():
            print(f"  {name:13s} served by {label}")
    print(f"per pipeline run, median [min-max] of {args.runs} runs each, alternating:")
    for name in ["pipeline", *(p.sextant.name for p in parts)]:
        original, optimized = times["original"][name], times["optimized"][name]
        ratio = statistics.median(original) / statistics.median(optimized)
        print(f"  {name:13s} original {spread(original)}   optimized {spread(optimized)}   {ratio:5.2f}x")


if __name__ == "__main__":
    main()
