"""A tiny random Llama saved with a character tokenizer (built in code, no downloads), and its
text-generation package, optimized once with the reference generator only."""

from __future__ import annotations

from pathlib import Path

VOCAB = 96  # two special tokens and the 94 printable ASCII characters from ' '
POSITIONS = 2048  # a request for all of them streams for seconds: tests hold requests so, whatever the load
GENERATION_NEW_TOKENS = 4  # the shared package's --new-tokens (conftest's generation_deployment)


def tokenizer():
    """One token per printable ASCII character (``<s>`` 0, ``</s>`` 1): ``decode`` gives the text back."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, **{chr(32 + i): i + 2 for i in range(VOCAB - 2)}}
    inner = Tokenizer(models.WordLevel(vocab, unk_token="</s>"))
    inner.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    inner.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=inner, bos_token="<s>", eos_token="</s>")


def llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=POSITIONS,
        bos_token_id=0,
        eos_token_id=1,
    )
    return LlamaForCausalLM(config).eval()


def eager(model, prompt: list[int], new_tokens: int) -> list[int]:
    """``transformers``' own greedy ``generate``: the ids every served answer must equal."""
    import torch

    ids = torch.tensor([prompt])
    out = model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
    )
    return out[0, len(prompt) :].tolist()


def generation_package(folder: Path, new_tokens: int = 4):
    """The model and its tokenizer saved with ``save_pretrained`` and optimized as a generation
    loop with ``torch-generate`` alone (short prompts, one repeat: what is measured does not matter here)."""
    import sextant
    from sextant.generation.config import GenerationConfig

    source = folder / "tiny-lm"
    llama().save_pretrained(source)
    tokenizer().save_pretrained(source)
    config = GenerationConfig(prompt_lengths=(6,), new_tokens=new_tokens, batch_sizes=(1,), repeats=1, warmup=0)
    return sextant.optimize(
        source, workspace=folder / "ws", task="text-generation", runners=("torch-generate",), generation=config
    )
