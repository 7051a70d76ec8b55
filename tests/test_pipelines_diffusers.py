"""Pipelines (issue 15) with a real diffusers StableDiffusionPipeline, tiny and random, built in code:
the text encoder, the UNet (called at a CFG-doubled batch with a 0-d timestep) and the VAE decoder
wrapped in place, optimized, checked end to end, then served to the unchanged pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sextant.testing.requires import importorskip

torch = importorskip("torch", reason="the pipeline wrapper is torch's")
importorskip("sextant_onnx", reason="the test restricts candidates to ones that include onnxruntime")
diffusers = importorskip("diffusers", reason="needs diffusers (the torch plugin's 'pipelines' extra)")
transformers = importorskip("transformers", reason="needs transformers (the torch plugin's 'pipelines' extra)")

import sextant  # noqa: E402
from _support import PIPELINE_OPTIONS  # noqa: E402
from sextant.testing import FAST  # noqa: E402

#: ONNX Runtime candidates only: torch-eager (the reference) could otherwise win the ranking, and then
#: the comparisons below would hold the original pipeline against itself
OPTIONS = {**PIPELINE_OPTIONS, "runners": ("onnxruntime",), "profiler": FAST}
PROMPTS = ["a cat", ["a dog", "a red car"]]  # batch 1 and 2: the UNet sees batch 2 and 4


def tiny_stable_diffusion(folder, size: int = 32, channels: tuple[int, int] = (16, 32)):
    """A StableDiffusionPipeline with random weights: a CLIP tokenizer over a letters-only vocabulary
    written to ``folder``, a 2-layer CLIP text encoder, a 2-level UNet and VAE; ``size`` pixels."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter], vocab[f"{letter}</w>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=size // 2,
        layers_per_block=1,
        block_out_channels=channels,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
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


def without_generator(args, kwargs):
    """The pipeline passes its generator to ``vae.decode``, which does not use it: not an input."""
    return args, {k: v for k, v in kwargs.items() if k != "generator"}


def wrap(pipe) -> list:
    """Wrap the three models the pipeline calls, by plain assignment (the pipeline's config keeps
    naming the original classes: see sextant_torch.pipelines.wrapper)."""
    pipe.text_encoder = sextant.Module(pipe.text_encoder, name="text_encoder")
    pipe.unet = sextant.Module(pipe.unet, name="unet")
    pipe.vae = sextant.Module(pipe.vae, name="vae", forward="decode", input_mapping=without_generator)
    return [pipe.text_encoder, pipe.unet, pipe.vae]


def runner(pipe, steps: int = 2, size: int = 32):
    def run(prompt):  # deterministic: a seeded generator per run
        generator = torch.Generator().manual_seed(0)
        return pipe(
            prompt,
            num_inference_steps=steps,
            guidance_scale=7.5,  # > 1: classifier-free guidance doubles the UNet's batch
            height=size,
            width=size,
            output_type="np",
            generator=generator,
        ).images

    return run


@pytest.fixture(scope="module")
def sd_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("sd")
    pipe = tiny_stable_diffusion(base / "tokenizer")
    run = runner(pipe)
    reference = [run(p) for p in PROMPTS]
    parts = wrap(pipe)
    record = sextant.optimize_pipeline(run, PROMPTS, workspace=base / "ws", modules=parts, **OPTIONS)
    return pipe, run, parts, base / "ws", record, reference


def test_wrapping_keeps_the_pipeline_a_diffusers_pipeline(sd_run):
    pipe, _, parts, _, _, _ = sd_run
    from diffusers import AutoencoderKL, UNet2DConditionModel

    assert pipe.config.unet == ("diffusers", "UNet2DConditionModel")  # not the wrapper's class
    assert pipe.config.vae == ("diffusers", "AutoencoderKL")
    assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(pipe.unet, sextant.Module)
    assert isinstance(pipe.vae, AutoencoderKL)
    assert pipe.components["unet"] is parts[1]
    assert pipe.unet.config.in_channels == 4 and pipe.dtype == torch.float32 and pipe.device.type == "cpu"


def test_each_module_is_optimized_and_the_images_hold(sd_run):
    _, _, _, workspace, record, _ = sd_run
    by_module = {s.module: s for s in record.structures}
    assert set(by_module) == {"text_encoder", "unet", "vae"}
    unet = by_module["unet"]
    assert "timestep: int64[0d]" in unet.description and "return_dict=False" in unet.description
    assert unet.calls == 4  # 2 steps x 2 prompts' runs
    status = json.loads((workspace / unet.package / "status.json").read_text())
    assert {2, 4} <= set(status["correctness_batches"])  # CFG: twice the prompts' batch
    assert {t["name"]: t["batched"] for t in status["signature"]["inputs"]}["timestep"] is False
    assert "vae" in by_module and "z: float32[4d]" in by_module["vae"].description  # the generator mapped away
    for structure in record.structures:  # every module served by a candidate that passed in the pipeline
        assert structure.serving.value == "optimized", (structure.module, structure.reason)
        assert structure.runner == "onnxruntime", (structure.module, structure.chosen)
        assert structure.attempts and structure.attempts[-1].passed
    assert record.end_to_end.passed
    assert {m.module for m in record.end_to_end.modules} == {"text_encoder", "unet", "vae"}


def test_a_second_run_is_fully_cached(sd_run):
    pipe, run, parts, workspace, first, _ = sd_run
    events = []
    second = sextant.optimize_pipeline(
        run,
        PROMPTS,
        workspace=workspace,
        modules=parts,
        on_event=events.append,
        **OPTIONS,
    )
    assert [s.chosen for s in second.structures] == [s.chosen for s in first.structures]
    for structure in second.structures:
        status = json.loads((workspace / structure.package / "status.json").read_text())
        assert status["run"]["ran"] == 0 and status["run"]["cached"] > 0, structure.module


def test_load_optimized_then_the_unchanged_pipeline_gives_the_same_images(sd_run):
    pipe, run, parts, workspace, _, reference = sd_run
    served = sextant.load_optimized(workspace, modules=parts, trust_source=True)
    assert set(served) == {"text_encoder", "unet", "vae"}
    labels = [label for structures in served.values() for label in structures.values()]
    assert labels and all(label.endswith("@cpu (onnxruntime)") for label in labels), served
    try:
        for prompt, want in zip(PROMPTS, reference):
            got = run(prompt)
            assert got.shape == want.shape and np.abs(got - want).max() < 1e-3
            assert not np.array_equal(run("a dog" if prompt == "a cat" else "a cat"), got)  # prompts matter
    finally:
        for part in parts:
            for key in list(part.sextant.installed()):
                part.sextant.install(key, None)


def test_save_pretrained_saves_the_original_components(sd_run, tmp_path):
    pipe, _, _, _, _, _ = sd_run
    pipe.save_pretrained(tmp_path / "saved")
    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"] and index["vae"] == ["diffusers", "AutoencoderKL"]
    assert (tmp_path / "saved" / "unet" / "config.json").exists()
