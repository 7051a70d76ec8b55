"""Text generation of a Llama-style causal LM of realistic CPU shape: every generation backend that
installs here, next to transformers' own eager ``generate``, and the memory-bandwidth limit.

    python benchmarks/generation.py [--quick] [--runners a,b] [--new-tokens 64] [--keep]

Builds a ``LlamaForCausalLM`` with random weights from a ``LlamaConfig`` in code (about 56 M
parameters by default: hidden 512, 8 layers, 8 heads of which 4 key/value, vocabulary 32000, untied
head; no download) and writes it with ``save_pretrained``. Then:

- ``sextant optimize FOLDER --task text-generation --prompt-lengths 128 --generation-batches 1,8``
  in a process of its own: every generator (``torch-generate`` is the reference; the others are
  judged by teacher forcing), with its TTFT at prompt 128, ITL p50 and tokens/s at batch 1 and 8,
  and peak resident memory, as sextant measured them;
- transformers' ``model.generate`` (greedy, eager, its default dynamic cache) in this process, on
  the same prompt and batch sizes: TTFT is a ``generate`` of one new token, the ITL the gaps
  between the calls of a logits processor (one call per generated token), tokens/s the whole
  ``generate`` of ``--new-tokens`` (its peak memory is not shown: it shares this process);
- the physical limit at batch 1: each token reads every weight once, so tokens/s cannot exceed
  memory bandwidth / bytes of weights. The bandwidth is measured with a numpy copy of an array
  much larger than the caches (read + write bytes over the time, best of several).

Prints the CPU (lscpu's model name) and the load average at start and end: on a shared machine
the timings say little. ``--quick`` (for trying the script) is a 4-layer model, 8 new tokens, one
repeat of eager generate (sextant's run keeps its own 3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sextant
from _run import cpu, optimize

PROMPT = 128
BATCHES = (1, 8)


def build(folder: Path, layers: int) -> int:
    """Write the random Llama with ``save_pretrained``; the bytes of its weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=1,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Memory bandwidth in bytes/s: the best numpy copy of ``megabytes`` (read + write)."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best


def eager(folder: Path, new_tokens: int, repeats: int, threads: int) -> dict[int, dict[str, float]]:
    """transformers' own ``generate`` on the same prompt: per batch size, TTFT, ITL p50, tokens/s."""
    import torch
    from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    stamps: list[float] = []

    class Stamp(LogitsProcessor):
        def __call__(self, input_ids, scores):
            stamps.append(time.perf_counter())
            return scores

    prompt = torch.from_numpy(np.random.default_rng(0).integers(2, model.config.vocab_size, PROMPT))

    def generate(batch: int, tokens: int) -> float:
        ids = prompt[None].repeat(batch, 1)
        stamps.clear()
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                logits_processor=LogitsProcessorList([Stamp()]),
            )
        return time.perf_counter() - start

    results = {}
    for batch in BATCHES:
        generate(batch, new_tokens)  # warm-up
        ttft = statistics.median(generate(batch, 1) for _ in range(repeats))
        totals, gaps = [], []
        for _ in range(repeats):
            totals.append(generate(batch, new_tokens))
            gaps.extend(np.diff(stamps))
        results[batch] = {
            "ttft_ms": ttft * 1e3,
            "p50_ms": float(np.percentile(gaps, 50) * 1e3) if gaps else float("nan"),
            "throughput": batch * new_tokens / statistics.median(totals),
        }
    return results


def _row(name: str, points: dict[int, dict], memory: float | None, status: str) -> str:
    one, eight = points.get(1, {}), points.get(8, {})
    mem = f"{memory:8.0f}" if memory else "       -"
    return (
        f"{name:40} {one.get('ttft_ms', float('nan')):9.1f} {one.get('p50_ms', float('nan')):8.2f} "
        f"{one.get('throughput', float('nan')):8.1f} {eight.get('throughput', float('nan')):8.1f} {mem}  {status}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 layers, 8 new tokens, one repeat")
    parser.add_argument("--runners", help="the generators to try (default: every one installed)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()
    layers, new_tokens, repeats = (4, 8, 1) if args.quick else (8, args.new_tokens, 3)
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.1f} at start", flush=True)
    work = Path(tempfile.mkdtemp(prefix="sextant-generation-"))
    try:
        weight_bytes = build(work / "llama", layers)
        size = f"{weight_bytes / 4e6:.1f} M parameters, {weight_bytes / 2**20:.0f} MiB fp32"
        print(f"model: random Llama, {layers} layers, {size}")
        extra = ["--task", "text-generation", "--prompt-lengths", str(PROMPT), "--new-tokens", str(new_tokens)]
        extra += ["--generation-batches", ",".join(map(str, BATCHES)), "--threads", str(args.threads)]
        extra += ["--cutoff", "0"]  # every backend measured in full: no screen, no early stop
        if args.runners:
            extra += ["--runners", args.runners]
        seconds, _ = optimize(str(work / "llama"), work / "ws", *extra)
        document = sextant.load(work / "ws").document
        print(f"sextant optimize: {seconds:.0f} s, best {document.best}")
        reference = eager(work / "llama", new_tokens, repeats, args.threads)
        bw = bandwidth()
        limit = bw / weight_bytes

        print(f"\nprompt {PROMPT} tokens, {new_tokens} new tokens, {args.threads} threads")
        print(f"{'backend':40} {'TTFT ms':>9} {'ITL p50':>8} {'tok/s@1':>8} {'tok/s@8':>8} {'peak MB':>8}")
        print(_row("transformers generate (eager, this process)", reference, None, ""))
        best_rate = 0.0
        for cid, record in sorted(document.candidates.items()):
            profile = record.profile
            points = {p.batch: p.to_json() for p in (profile.points if profile else ())}  # as eager's rows
            memory = max((p.get("memory_mb") or 0 for p in points.values()), default=None)
            screened = bool(profile and profile.screened)
            note = "screened (a short look at batch 1 only)" if screened else record.status.value
            if note != "ok" and not screened:
                note += f": {(record.reason or '')[:60]}"
            print(_row(cid, points, memory, note))
            if record.status.value == "ok" and not screened and 1 in points:
                best_rate = max(best_rate, points[1]["throughput"])
        print(
            f"\nmemory bandwidth (numpy copy): {bw / 1e9:.1f} GB/s; weights {weight_bytes / 1e6:.0f} MB: "
            f"limit {limit:.1f} tokens/s at batch 1"
        )
        if best_rate:
            print(
                f"best at batch 1: {best_rate:.1f} tokens/s = {best_rate / limit:.0%} of the limit, "
                f"{best_rate / reference[1]['throughput']:.2f}x eager generate"
            )
        print(f"load average {os.getloadavg()[0]:.1f} at the end" + (f"; working folder {work}" if args.keep else ""))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
