"""The client example ``sextant deploy triton`` writes next to the repository: a short script that
sends one real request (a row of the package's samples, saved beside it) with tritonclient, over
HTTP or gRPC, and prints what comes back; for a streaming generation model (:func:`stream_example`),
one of the package's prompts sent over gRPC's bidirectional stream, each token printed as it arrives."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

_SCRIPT = '''"""Send one request to the model {model!r} on Triton Inference Server and print the outputs.

Written by `sextant deploy triton`. The request is a sample from the package, saved in {npz}.

    pip install 'tritonclient[http,grpc]'
    python {script}                        # HTTP on 127.0.0.1:8000
    python {script} --grpc --url 127.0.0.1:8001
"""

import argparse
from pathlib import Path

import numpy as np

MODEL = {model!r}
#: served input name → (Triton data type, shape of this request)
INPUTS = {inputs!r}
OUTPUTS = {outputs!r}


def main() -> None:
    parser = argparse.ArgumentParser(description="One request to " + MODEL)
    parser.add_argument("--url", default=None, help="host:port (default 127.0.0.1:8000, or :8001 with --grpc)")
    parser.add_argument("--grpc", action="store_true", help="use gRPC instead of HTTP")
    args = parser.parse_args()
    if args.grpc:
        import tritonclient.grpc as client
    else:
        import tritonclient.http as client
    url = args.url or ("127.0.0.1:8001" if args.grpc else "127.0.0.1:8000")
    with np.load(Path(__file__).with_name({npz!r})) as data:
        arrays = {{name: data[name] for name in INPUTS}}
    requests = []
    for name, (datatype, shape) in INPUTS.items():
        tensor = client.InferInput(name, shape, datatype)
        tensor.set_data_from_numpy(arrays[name])
        requests.append(tensor)
    triton = client.InferenceServerClient(url)
    try:
        result = triton.infer(MODEL, requests, outputs=[client.InferRequestedOutput(n) for n in OUTPUTS])
        for name in OUTPUTS:
            array = result.as_numpy(name)
            print(f"{{name}}: {{array.dtype}} {{list(array.shape)}}, first values {{[round(float(v), 4) for v in array.ravel()[:4]]}}")
    finally:
        triton.close()


if __name__ == "__main__":
    main()
'''

#: numpy dtype name → Triton's data type string as clients send it
CLIENT_TYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}


def example(model: str, script: str, npz: str, request: Mapping[str, np.ndarray], outputs: list[str]) -> str:
    """The script's text; ``request`` maps served input names to the arrays it sends."""
    inputs = {name: (CLIENT_TYPES.get(a.dtype.name, "BYTES"), list(a.shape)) for name, a in request.items()}
    return _SCRIPT.format(model=model, script=script, npz=npz, inputs=inputs, outputs=outputs)


def request_file(request: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **request)
    return buffer.getvalue()


_STREAM_SCRIPT = '''"""Stream tokens from the generative model {model!r} on Triton Inference Server, printed as they arrive.

Written by `sextant deploy triton`. The model is decoupled: one response per generated token, over
gRPC's bidirectional stream. The prompt is one of the package's prompts, saved in {npz}{text_doc}.

    pip install 'tritonclient[grpc]'
    python {script}                        # gRPC on 127.0.0.1:8001
    python {script} --url HOST:PORT --max-tokens 16{text_usage}
"""

import argparse
import queue
from pathlib import Path

import numpy as np
import tritonclient.grpc as client

MODEL = {model!r}
TEXT = {text!r}  # the model was deployed with its tokenizer: it takes text_input and answers text_output


def main() -> None:
    parser = argparse.ArgumentParser(description="Stream tokens from " + MODEL)
    parser.add_argument("--url", default="127.0.0.1:8001", help="host:port of the gRPC endpoint")
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens to generate (default: the model's)")
    if TEXT:
        parser.add_argument("--text", default=None, help="a prompt as text, instead of the saved token ids")
    args = parser.parse_args()
    inputs = []
    if TEXT and args.text is not None:
        tensor = client.InferInput("text_input", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([args.text.encode()], dtype=np.object_))
    else:
        with np.load(Path(__file__).with_name({npz!r})) as data:
            ids = data["input_ids"].astype(np.int64)
        tensor = client.InferInput("input_ids", list(ids.shape), "INT64")
        tensor.set_data_from_numpy(ids)
    inputs.append(tensor)
    if args.max_tokens is not None:
        tokens = client.InferInput("max_tokens", [1], "INT32")
        tokens.set_data_from_numpy(np.array([args.max_tokens], dtype=np.int32))
        inputs.append(tokens)
    arrived: queue.Queue = queue.Queue()
    triton = client.InferenceServerClient(args.url)
    triton.start_stream(callback=lambda result, error: arrived.put((result, error)))
    try:
        triton.async_stream_infer(MODEL, inputs, enable_empty_final_response=True)
        while True:
            result, error = arrived.get(timeout=600)
            if error is not None:
                raise SystemExit(f"error: {{error}}")
            ids = result.as_numpy("output_ids")
            if ids is not None and ids.size:
                text = result.as_numpy("text_output") if TEXT else None
                shown = f" {{text[0].decode(errors='replace')!r}}" if text is not None and text.size else ""
                print(f"token {{ids.tolist()}}{{shown}}", flush=True)
            final = result.get_response().parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                break
    finally:
        triton.stop_stream()
        triton.close()


if __name__ == "__main__":
    main()
'''


def stream_example(model: str, script: str, npz: str, text: bool) -> str:
    """The streaming client script's text (gRPC, tokens printed as they arrive); ``text``: the model
    takes ``text_input`` too (``--text``)."""
    return _STREAM_SCRIPT.format(
        model=model,
        script=script,
        npz=npz,
        text=text,
        text_doc=" (or give --text: the model has its tokenizer)" if text else "",
        text_usage=f'\n    python {script} --text "Once upon a time"' if text else "",
    )
