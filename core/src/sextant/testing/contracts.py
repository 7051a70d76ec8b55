"""Contract checks a plugin author runs against their own plugin (in their own tests).

::

    from sextant.testing.contracts import check_light_start_up, check_plugin, check_runner, check_step
    from sextant.testing.contracts import check_computed_in_reduced_precision, check_judged_against_the_reference

    def test_contracts():
        check_plugin("my_plugin")            # specs well-formed, callables importable, names unique
        check_light_start_up(["my_framework"])  # `sextant plugins` does not import it

Each check raises ``AssertionError`` listing every problem it found.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sextant.plugins import load_catalog
from sextant.runtime import Fingerprinted, Runner, RunnerRequest, StepRequest
from sextant.signature import Signature, batch_size
from sextant.specs import ConverterSpec, ExporterSpec, RunnerSpec, resolve


def check_plugin(module: str) -> list[Any]:
    """Load ``module`` as the only plugin; check its specs; return its contributions."""
    catalog = load_catalog(extra_modules=[module], entry_points=False)
    mine = [c for c in catalog.contributions if c.plugin.name == module]
    problems = [f"plugin failed to load: {p.error}" for p in catalog.plugins if p.name == module and p.error]
    if not mine and not problems:
        problems.append(f"{module} contributes nothing (no @sextant.hookimpl register hooks returned specs)")
    for contribution in mine:
        spec = contribution.spec
        if any(importlib.util.find_spec(m.split(".", 1)[0]) is None for m in spec.requires):
            continue  # its library is absent here; nothing more to import
        callables = ("run", "load", "create", "check", "canonical_hash")
        refs = [getattr(spec, attr) for attr in callables if getattr(spec, attr, None)]
        for ref in refs:
            try:
                if not callable(resolve(ref)):
                    problems.append(f"{contribution.kind} {spec.name}: {ref} is not callable")
            except Exception as exc:
                problems.append(f"{contribution.kind} {spec.name}: cannot import {ref}: {type(exc).__name__}: {exc}")
    assert not problems, "plugin contract problems:\n- " + "\n- ".join(problems)
    return mine


def check_light_start_up(modules: Sequence[str]) -> dict[str, Any]:
    """Run ``sextant plugins --json`` in a fresh interpreter and check that it imported none of
    ``modules`` (listing plugins must stay fast); return the listing."""
    probe = (
        "import json, sys; from sextant.cli import main; main(['plugins', '--json']);"
        f"print('HEAVY', json.dumps([m for m in {list(modules)!r} if m in sys.modules]), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    line = next((ln for ln in result.stderr.splitlines() if ln.startswith("HEAVY ")), None)
    assert line is not None, f"sextant plugins failed:\n{result.stderr[-2000:]}"
    heavy = json.loads(line.removeprefix("HEAVY "))
    assert not heavy, f"sextant plugins imported {heavy}"
    return json.loads(result.stdout)


def check_step(
    spec: ExporterSpec | ConverterSpec, input: Path, output_dir: Path, signature: Signature, samples: Path, **kw: Any
) -> Path:
    """Run an exporter or converter in this process; check it wrote its artifact where it should."""
    output_dir.mkdir(parents=True, exist_ok=True)
    request = StepRequest(input=input, output_dir=output_dir, signature=signature, samples=samples, **kw)
    artifact = Path(resolve(spec.run)(request))
    assert artifact.exists(), f"{spec.name} returned {artifact}, which does not exist"
    assert output_dir in (artifact, *artifact.parents), f"{spec.name} wrote {artifact} outside {output_dir}"
    return artifact


def check_runner(
    spec: RunnerSpec, artifact: Path, signature: Signature, batch: Mapping[str, np.ndarray], **kw: Any
) -> dict[str, np.ndarray]:
    """Load a runner, infer twice, check the outputs' types, batch axis and repeatability; a runner
    that says what it compiled (``Fingerprinted``; asked once loaded, before any call, as a run
    asks) must say the same once loaded again."""
    request = RunnerRequest(artifact=artifact, signature=signature, **kw)
    runner = resolve(spec.load)(request)
    problems = []
    if not isinstance(runner, Runner):
        problems.append(f"{spec.name}: {type(runner).__name__} lacks infer() or close()")
    try:
        printed = runner.fingerprint() if isinstance(runner, Fingerprinted) else None
        first = dict(runner.infer(batch))
        second = dict(runner.infer(batch))
    finally:
        runner.close()
    if printed is not None:
        again = resolve(spec.load)(request)
        try:
            if again.fingerprint() != printed:
                problems.append(f"{spec.name}: fingerprint() differs between two loads of one artifact")
        finally:
            again.close()
    size = batch_size(batch, signature)
    for name, value in first.items():
        if not isinstance(value, np.ndarray):
            problems.append(f"{spec.name}: output '{name}' is {type(value).__name__}, not numpy.ndarray")
            continue
        if value.ndim and value.shape[0] != size:
            problems.append(f"{spec.name}: output '{name}' has {value.shape[0]} rows for a batch of {size}")
        if not np.array_equal(value, second.get(name), equal_nan=value.dtype.kind == "f"):
            problems.append(f"{spec.name}: output '{name}' differs between two identical calls")
    assert not problems, "runner contract problems:\n- " + "\n- ".join(problems)
    return first


def check_judged_against_the_reference(package: Path, record: Mapping[str, Any]) -> None:
    """A candidate of a written package was compared with the fp32 reference under its precision's
    tolerance, and its status follows from its outputs: recomputed here from the package's files,
    element by element (an element is off when it misses both atol and rtol × |reference|).

    ``record`` is the candidate's entry in ``status.json``. For plugins with reduced-precision
    candidates, whose outcome (pass or fail) depends on the hardware: this checks it is the right one.
    """
    from sextant.compare import Tolerance
    from sextant.samples import load_batches

    tolerance = Tolerance.for_precision(record["precision"])
    assert (record["correctness"]["atol"], record["correctness"]["rtol"]) == (tolerance.atol, tolerance.rtol)
    reference = load_batches(package / "reference.npz")
    outputs = load_batches(package / record["outputs"])
    assert len(outputs) == len(reference)
    within = True
    for expected, got in zip(reference, outputs):
        for name, ref in expected.items():
            ref64 = ref.astype(np.float64)
            error = np.abs(got[name].astype(np.float64) - ref64)
            within &= bool(np.all((error <= tolerance.atol) | (error <= tolerance.rtol * np.abs(ref64))))
    judged = ("ok", "duplicate") if within else ("incorrect",)  # a duplicate: right, and runs as another one
    assert record["status"] in judged, (within, record["status"], record["correctness"])


#: precisions whose outputs must show they were computed reduced (:func:`check_candidates_on_device`)
REDUCED = ("fp16", "bf16", "int8")


def check_candidates_on_device(package: Path, device: str) -> dict[str, Mapping[str, Any]]:
    """Every candidate planned on ``device`` (``"cuda"``) ran and was judged right or wrong by its
    outputs, not merely "something ran": returns those records by id.

    - each default-options candidate was judged (``ok`` or ``incorrect``), and its status follows
      from its outputs against the CPU fp32 reference at its precision's tolerance
      (:func:`check_judged_against_the_reference`); an option variant may instead be skipped with
      its reason (variants run only where the runner's defaults did best);
    - a screened candidate counts as judged: screening comes after correctness;
    - an fp16, bf16 or int8 candidate shows it ran reduced: its outputs are off the reference (an
      error above zero) and differ from those of the same step and runner at fp32, where that ran.

    A failed candidate is an error here, with its reason and the tail of its log.
    """
    from sextant.package import read_document
    from sextant.records import Status
    from sextant.samples import load_batches

    records = read_document(package).candidates
    on_device = {cid: r for cid, r in records.items() if r.device == device}
    assert on_device, f"no candidate was planned on {device}"
    judged = (Status.OK, Status.INCORRECT)
    problems = []
    for cid, record in on_device.items():
        if record.status in judged:
            check_judged_against_the_reference(package, record.to_json())
        elif not (record.status == Status.SKIPPED and "[" in cid and record.reason):
            problems.append(f"{cid}: {record.status}: {record.reason}\n{record.log_tail[-800:]}")
    assert not problems, f"candidates on {device} that were not judged:\n- " + "\n- ".join(problems)
    reference = load_batches(package / "reference.npz")
    for cid, record in on_device.items():
        if record.precision not in REDUCED or record.status not in judged:
            continue
        outputs = load_batches(package / str(record.outputs))
        error = max(_max_error(want, got) for want, got in zip(reference, outputs))
        reduced = record.precision
        assert error > 0, f"{cid}: outputs equal the fp32 reference bit for bit: it did not run in {reduced}"
        twin = next(
            (
                r
                for r in on_device.values()
                if (r.step, r.runner, r.precision, dict(r.options))
                == (record.step, record.runner, "fp32", dict(record.options))
                and r.outputs
            ),
            None,
        )
        if twin is not None:
            fp32 = load_batches(package / str(twin.outputs))
            assert any(_max_error(a, b) > 0 for a, b in zip(fp32, outputs)), (
                f"{cid}: outputs equal its fp32 twin's on {device}: it did not run in {reduced}"
            )
    return {cid: record.to_json() for cid, record in on_device.items()}


def _max_error(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> float:
    return max(
        float(np.max(np.abs(got[name].astype(np.float64) - ref.astype(np.float64)), initial=0.0))
        for name, ref in expected.items()
    )
def check_computed_in_reduced_precision(
    package: Path, record: Mapping[str, Any], fp32_record: Mapping[str, Any], floor: float = 1e-4
) -> float:
    """A reduced-precision candidate of a written package really computed in its precision, not
    silently in fp32: its outputs, read from the package's files, miss the fp32 reference by more
    than ``floor`` (relative to the reference's largest magnitude; bf16 keeps about 3 significant
    digits, fp16 about 4) and by more than ten times what the fp32 candidate ``fp32_record`` misses
    it by (fp32's run-to-run differences stay near 1e-7). Returns the candidate's relative error.
    """
    error, exact = _relative_error(package, record), _relative_error(package, fp32_record)
    precision = record["precision"]
    assert fp32_record["precision"] == "fp32" and precision != "fp32", (precision, fp32_record["precision"])
    assert error > floor and error > 10 * exact, (
        f"the {precision} candidate ({record['runner']}) misses the fp32 reference by {error:.2e} (relative), "
        f"the fp32 one ({fp32_record['runner']}) by {exact:.2e}: it looks computed in fp32, not {precision}"
    )
    return error


def _relative_error(package: Path, record: Mapping[str, Any]) -> float:
    """The largest absolute difference from the reference over every float output and batch,
    divided by the reference's largest magnitude."""
    from sextant.samples import load_batches

    reference = load_batches(package / "reference.npz")
    outputs = load_batches(package / record["outputs"])
    assert len(outputs) == len(reference)
    error = scale = 0.0
    for expected, got in zip(reference, outputs):
        for name, ref in expected.items():
            if ref.dtype.kind == "f":
                ref64 = ref.astype(np.float64)
                error = max(error, float(np.max(np.abs(got[name].astype(np.float64) - ref64), initial=0.0)))
                scale = max(scale, float(np.max(np.abs(ref64), initial=0.0)))
    return error / scale if scale else error
