"""The ``model.py`` of a Python-backend model that runs a sextant runner inside Triton.

``sextant deploy triton --backend python`` copies this file as ``<model>/<version>/model.py`` and
writes beside it ``package/``: a one-candidate package (``status.json`` with the signature and the
candidate's record, and its artifact). ``initialize`` loads that candidate's runner through
``sextant.api.Package``, on the device and with the options and threads it was measured with,
checking its files against the package's manifest; it unpickles files (a source ``nn.Module``)
only when deployed with ``--trust-source`` (the config parameter ``sextant_trust_source``);
``execute`` runs every group of same-shaped requests as one batch (Triton's dynamic batcher hands
several at once) and answers each request with its rows.

The Python that Triton's stub embeds must have sextant, sextant-triton and the plugin of the
candidate's runner installed (for example ``pip install sextant sextant-triton sextant-torch`` in
the server's image).
"""

from __future__ import annotations

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils


def utf8_locale() -> None:
    """Triton's stub embeds Python without setting the locale (and ignores PYTHONUTF8), so files
    open as ASCII: torch.compile then fails to read its own templates. Take LC_CTYPE from the
    environment, or C.UTF-8."""
    import locale

    for name in ("", "C.UTF-8"):
        try:
            locale.setlocale(locale.LC_CTYPE, name)
        except locale.Error:
            continue
        if locale.getpreferredencoding(False).lower().replace("-", "") == "utf8":
            return


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        from sextant.api import Package

        utf8_locale()
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        trusted = config.get("parameters", {}).get("sextant_trust_source", {}).get("string_value") == "true"
        self.runner = Package(folder / "package").best().load(trust_source=trusted)
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}

    def execute(self, requests: list) -> list:
        from sextant_triton.batching import respond

        return respond(requests, self.inputs, self.outputs, self.runner.infer, self.batching, pb_utils)

    def finalize(self) -> None:
        self.runner.close()
