"""A ``transformers`` causal LM built for onnxruntime-genai by its model builder (the build step of
the ``onnxruntime-genai`` generator).

onnxruntime-genai's model builder (``onnxruntime_genai.models.builder``) writes ONNX Runtime's own
graph of the architecture (GroupQueryAttention with a shared past/present buffer, fused rotary
embeddings and norms) from a ``save_pretrained`` folder, with ``genai_config.json`` beside it, at
fp32, or with its weights quantized to int8 or int4 (``MatMulNBits``: weight-only, the activations
stay float) when ``request.options["precision"]`` says so.

The builder reads the folder's tokenizer too (for the special tokens and to copy it beside the
model), although a generator fed token ids never uses it. A folder that has none (a model built
in code and saved without one) gets a stand-in written into a staging folder next to links to the
source's files: a word-level tokenizer of the model's vocabulary whose special tokens are the
configuration's, so the builder takes the model's own ids for them.

What the builder cannot build is a :class:`~sextant.errors.StepError` with the real cause: an
architecture it does not know (GPT-2), or, on the CPU, heads whose size is not a multiple of 16
(ONNX Runtime's GroupQueryAttention kernel refuses them when it runs).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from sextant.api import StepError, StepRequest

#: sextant's precision → the builder's ``-p``
PRECISIONS = {"fp32": "fp32", "int8": "int8", "int4": "int4"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
#: ONNX Runtime's GroupQueryAttention on the CPU takes head sizes that are multiples of this
CPU_HEAD_MULTIPLE = 16
HINT = "Leave onnxruntime-genai out (--runners) for this model; the other generators run it."


def _config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise StepError(f"{folder} has no readable config.json: it is not a save_pretrained folder ({exc})") from exc


def _check(config: dict[str, Any]) -> None:
    """The causes the builder would only show as a traceback, or ONNX Runtime only at run time."""
    text = config.get("text_config") or config
    hidden, heads = text.get("hidden_size"), text.get("num_attention_heads")
    head = text.get("head_dim") or (hidden // heads if hidden and heads else None)
    if head and head % CPU_HEAD_MULTIPLE:
        raise StepError(
            f"the model's attention heads are {head} wide: onnxruntime-genai's graph runs ONNX Runtime's "
            f"GroupQueryAttention, whose CPU kernel takes only head sizes that are multiples of {CPU_HEAD_MULTIPLE}",
            hint=HINT,
        )


def _token(i: int) -> str:
    return f"<{i}>"


def _stand_in_tokenizer(config: dict[str, Any], folder: Path) -> None:
    """A word-level tokenizer of ``vocab_size`` tokens ``<0>``, ``<1>``, ... with the configuration's
    special tokens, saved into ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    text = config.get("text_config") or config
    vocab = int(text["vocab_size"])
    core = Tokenizer(models.WordLevel({_token(i): i for i in range(vocab)}, unk_token=_token(0)))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    special = {}
    for name in ("bos", "eos", "pad"):
        value = text.get(f"{name}_token_id", config.get(f"{name}_token_id"))
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, int) and 0 <= value < vocab:
            special[f"{name}_token"] = _token(value)
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token=_token(0), **special).save_pretrained(folder)


def _staged(source: Path, config: dict[str, Any], stack: contextlib.ExitStack) -> Path:
    """``source`` itself when it has a tokenizer, else a staging folder: links to its files and a
    stand-in tokenizer."""
    if any((source / name).exists() for name in TOKENIZER_FILES):
        return source
    staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sextant-genai-")))
    for item in source.iterdir():
        (staging / item.name).symlink_to(item.resolve())
    _stand_in_tokenizer(config, staging)
    return staging


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"onnxruntime-genai {version('onnxruntime-genai')}"
    except PackageNotFoundError:
        return "onnxruntime-genai"


def build(request: StepRequest) -> Path:
    """Build the ``save_pretrained`` folder ``request.input`` into ``request.output_dir``."""
    precision = str(request.options.get("precision", "fp32"))
    if precision not in PRECISIONS:
        raise StepError(f"onnxruntime-genai's model builder has no precision {precision!r} here")
    provider = "cuda" if request.device == "cuda" else "cpu"
    config = _config(request.input)
    if provider == "cpu":
        _check(config)
    from onnxruntime_genai.models import builder

    with contextlib.ExitStack() as stack:
        folder = _staged(request.input, config, stack)
        cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="sextant-genai-cache-"))
        out = str(request.output_dir)
        try:
            options = builder.parse_extra_options(None, str(folder), out, PRECISIONS[precision], provider, cache, [])
            builder.create_model(None, str(folder), out, PRECISIONS[precision], provider, cache, **options)
        except NotImplementedError as exc:  # its message names only the (staging) folder
            architecture = ",".join(config.get("architectures") or [config.get("model_type", "?")])
            raise StepError(
                f"onnxruntime-genai's model builder ({_version()}) does not support the {architecture} architecture",
                hint=HINT,
            ) from exc
        except Exception as exc:  # the builder raises bare Exception, ValueError, KeyError, ... for what it cannot do
            raise StepError(f"onnxruntime-genai's model builder failed: {type(exc).__name__}: {exc}", hint=HINT) from exc
    if not (request.output_dir / "genai_config.json").exists():
        raise StepError("onnxruntime-genai's model builder wrote no genai_config.json", hint=HINT)
    return request.output_dir
