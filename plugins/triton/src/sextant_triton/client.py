"""The client example ``sextant deploy triton`` writes next to the repository: a short script that
sends one real request (a row of the package's samples, saved beside it) with tritonclient, over
HTTP or gRPC, and prints what comes back."""

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
