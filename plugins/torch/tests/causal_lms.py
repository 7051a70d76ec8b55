"""Tiny random causal LMs of three decoder families, built from configs (no downloads)."""

from __future__ import annotations

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Model,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 96
POSITIONS = 64


#: Llama and Qwen2 (grouped-query attention, rotary positions) at the same tiny size
DECODER = dict(
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
#: the same with 16-wide attention heads: the narrowest ONNX Runtime's GroupQueryAttention takes on
#: the CPU (the graph onnxruntime-genai's model builder writes)
DECODER_HEAD16 = {**DECODER, "num_attention_heads": 2, "num_key_value_heads": 1}


def llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**DECODER)).eval()


def llama_head16() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**DECODER_HEAD16)).eval()


def qwen2_head16() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(**DECODER_HEAD16)).eval()


def gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=POSITIONS, bos_token_id=0, eos_token_id=1)
    return GPT2LMHeadModel(config).eval()


def qwen2() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(**DECODER)).eval()


def gpt2_body() -> GPT2Model:
    """GPT-2 without its LM head: no generate."""
    torch.manual_seed(0)
    return GPT2Model(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=POSITIONS)).eval()
