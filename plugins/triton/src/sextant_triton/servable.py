"""What this environment can serve of a package, and the refusal that says what to install.

Each way of serving needs something different *here*:

- ``sextant serve`` and a Python-backend model run sextant's own runner: the plugin that
  contributed the candidate's runner must be installed (``CandidateView.runner_missing``);
- a native backend (``deploy triton``'s default where Triton has one) copies the artifact: nothing
  more is needed here, the server needs the backend;
- ``sextant analyze`` in local mode loads models into the ``tritonserver`` of the nvidia-pytriton
  wheel, which has only the Python backend and sextant's stand-in for the ONNX Runtime backend: an
  ONNX Runtime candidate loads as deployed (one with the OpenVINO accelerator only where the
  installed onnxruntime has OpenVINO's provider), everything else through the Python backend
  (:func:`local_backend`).

A candidate that cannot be served is refused with :class:`~sextant.api.MissingPluginError` (exit
code 1: the command is right, the environment is not): the plugin, the command that installs it,
and ``--candidate`` with the package's best candidate this environment *can* serve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sextant.api import MissingPluginError, Status, installed, served_name

from sextant_triton import backends

if TYPE_CHECKING:
    from sextant.api import CandidateView, Package

#: why a candidate cannot be served a given way here, or ``None`` when it can
Need = Callable[["CandidateView"], "str | None"]
#: the onnxruntime build that has OpenVINO's execution provider
ORT_OPENVINO = "onnxruntime-openvino"


def model_name(package: Package, given: str | None) -> str:
    """The name the model is served (and deployed) under: ``given``, else the package's."""
    return served_name(package, given, "Triton")


def runner_need(view: CandidateView) -> str | None:
    """Serving with sextant's runner (``serve``, the Python backend) needs its plugin here."""
    return view.runner_missing()


def openvino_accelerated(view: CandidateView) -> bool:
    return backends.native_backend(view.record) is backends.ONNXRUNTIME and any(
        a.name == "openvino" for a in backends.tuning(backends.ONNXRUNTIME, view.record, 1).cpu_accelerators
    )


def local_backend(view: CandidateView) -> str:
    """The ``--backend`` that the bundled tritonserver can load for ``view``: ``auto`` for an ONNX
    Runtime or OpenVINO IR candidate (sextant's Python-based stand-ins load their native configs,
    the second where openvino is installed), else ``python``."""
    native = backends.native_backend(view.record)
    if native is backends.ONNXRUNTIME and (not openvino_accelerated(view) or installed(ORT_OPENVINO)):
        return "auto"
    if native is backends.OPENVINO and installed("openvino"):
        return "auto"
    return "python"


def local_need(view: CandidateView) -> str | None:
    """Why the bundled tritonserver cannot load ``view`` here, or ``None``."""
    if local_backend(view) == "auto":
        return None
    missing = runner_need(view)
    if missing is not None and openvino_accelerated(view):
        return f"{missing} (or ONNX Runtime with OpenVINO's provider, {ORT_OPENVINO}, for the ONNX Runtime backend)"
    return missing


def best_servable(package: Package, need: Need, exclude: str = "") -> str | None:
    """The package's best candidate that ``need`` finds nothing missing for: the selection's
    ranking first, then any other candidate that passed."""
    document = package.document
    ranking = document.selection.ranking if document.selection else ()
    passed = [cid for cid, record in document.candidates.items() if record.status == Status.OK]
    for cid in dict.fromkeys([*ranking, *passed]):
        if cid == exclude:
            continue
        view = package.candidate(cid)
        if view.record.artifact is not None and not view.record.screened and need(view) is None:
            return cid
    return None


def require(package: Package, view: CandidateView, need: Need, doing: str) -> None:
    """Raise :class:`MissingPluginError` when ``need`` finds ``view`` cannot be served here; the hint
    names the install command and the best candidate this environment can serve instead."""
    missing = need(view)
    if missing is None:
        return
    other = best_servable(package, need, exclude=view.id)
    instead = (
        f" Or {doing} the best candidate this environment can: --candidate {other}."
        if other
        else " No other candidate of this package can be served here either."
    )
    raise MissingPluginError(
        f"cannot {doing} candidate {view.id} of {package.path}: {missing}",
        hint=f"Install it into this environment: {view.install_command()}.{instead}",
    )


def screened_warning(view: CandidateView) -> str | None:
    """A warning when ``view`` was only screened (a short screen showed it could not win; it was
    never profiled in full, so the settings derived from its profile rest on two short points)."""
    if not view.record.screened:
        return None
    return (
        f"warning: {view.id} was only screened (screened out, never profiled in full): its serving settings "
        "come from a short screen, and the package's selection did not choose it"
    )
