"""Continuous batching against one request at a time, in one process: the streaming model's scheduler
(``sextant_triton.stream_scheduler.Scheduler``, what the Triton Python-backend model and ``sextant
serve`` run) over the ``torch-generate`` generator of a random Llama, with ``--requests`` requests
held at once.

    python benchmarks/continuous_batching.py [--requests 4] [--tokens 32] [--rounds 6] [--hidden 256]

Each round runs both caps in turn (the order alternates between rounds, so a drift of the machine's
speed falls on both): ``max_sequences`` 1 (each request decoded alone, the others wait) and
``--requests`` (every request joins one running batch). It prints, per cap, the output tokens/s of
the whole round and the time to first token (TTFT) of the requests (median and p90 over every
round's requests), and the ratio of the two caps' tokens/s round by round (median, min–max). No
server: what differs between the rows is only the scheduling, not gRPC or Triton's Python stub.
Prints the CPU and the load average at start and end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _run import cpu


class Sink:
    """Records when each token of one request went out."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.times: list[float] = []
        self.done = False
        self.error: str | None = None

    def send(self, ids, last) -> None:
        self.times.extend([time.perf_counter()] * len(ids))
        self.done = self.done or last

    def fail(self, message) -> None:
        self.error, self.done = message, True

    def cancelled(self) -> bool:
        return False

    def close(self) -> None:
        self.done = True


def build(folder: Path, hidden: int, layers: int, vocab: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 11 // 4,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 128),
        max_position_embeddings=1024,
    )
    LlamaForCausalLM(config).eval().save_pretrained(folder)


def one_round(generator, prompts, tokens: int, cap: int) -> tuple[float, list[float]]:
    """Output tokens/s of the round and each request's TTFT (ms)."""
    from sextant_triton.stream_protocol import Prompt
    from sextant_triton.stream_scheduler import Scheduler

    scheduler = Scheduler(generator, max_sequences=cap, log=lambda message: None)
    start = time.perf_counter()
    sinks = [Sink(start) for _ in prompts]
    for ids, sink in zip(prompts, sinks):
        scheduler.submit(Prompt(ids, tokens, True), sink)
    for _ in range(len(prompts) * (tokens + 2) + 10):  # a bound: each step makes at least one token
        if all(sink.done for sink in sinks):
            break
        scheduler.step()
    wall = time.perf_counter() - start
    failed = [sink.error for sink in sinks if sink.error or len(sink.times) != tokens]
    if failed:
        raise SystemExit(f"a request did not get its {tokens} tokens: {failed[0]}")
    return len(prompts) * tokens / wall, [(sink.times[0] - start) * 1e3 for sink in sinks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--prompt", type=int, default=32, help="mean prompt length (±25 %%)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    args = parser.parse_args()

    import torch
    from sextant.api import GeneratorRequest
    from sextant_torch.generation import load_dynamic

    print(f"{cpu()}; load average {os.getloadavg()[0]:.1f} at start")
    print(f"torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        build(folder, args.hidden, args.layers, args.vocab)
        generator = load_dynamic(GeneratorRequest(folder, max_length=args.prompt * 2 + args.tokens))
        rng = np.random.default_rng(0)
        lengths = rng.integers(args.prompt * 3 // 4, args.prompt * 5 // 4 + 1, args.requests)
        prompts = [rng.integers(2, args.vocab, n).astype(np.int64) for n in lengths]
        one_round(generator, prompts, 4, args.requests)  # warm-up: first calls, allocations
        caps = (1, args.requests)
        results: dict[int, list[tuple[float, list[float]]]] = {cap: [] for cap in caps}
        for r in range(args.rounds):
            for cap in caps if r % 2 == 0 else caps[::-1]:
                results[cap].append(one_round(generator, prompts, args.tokens, cap))
    params = sum(p.numel() for p in generator.model.parameters()) if hasattr(generator, "model") else None
    print(
        f"random Llama: hidden {args.hidden}, {args.layers} layers, vocabulary {args.vocab}"
        + (f", {params / 1e6:.1f} M parameters" if params else "")
        + f"; {args.requests} requests held at once, prompts {', '.join(map(str, lengths))} tokens, "
        f"{args.tokens} new tokens each; {args.rounds} rounds"
    )
    print(f"{'cap (max_sequences)':<22}{'tokens/s median':>16}{'min-max':>18}{'TTFT p50 ms':>13}{'p90 ms':>9}")
    for cap in caps:
        rates = [rate for rate, _ in results[cap]]
        ttfts = sorted(t for _, ts in results[cap] for t in ts)
        p90 = ttfts[min(len(ttfts) - 1, int(0.9 * len(ttfts)))]
        print(
            f"{cap:<22}{statistics.median(rates):>16.1f}{f'{min(rates):.1f}-{max(rates):.1f}':>18}"
            f"{statistics.median(ttfts):>13.1f}{p90:>9.1f}"
        )
    ratios = [b[0] / a[0] for a, b in zip(results[caps[0]], results[caps[1]])]
    print(
        f"tokens/s, {caps[1]} together / one at a time, round by round: median {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
