"""``sextant deploy TARGET``, the core's command, with the test deployer ``folder``
(:mod:`sextant.testing.folder`, written against the deployer API only): the command built from its
spec, the request it gets, the rendering, the refusals; and the written folder's ``serve.py`` run
in a fresh process, answering what the candidate answers here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import sextant
from sextant.cli import State, app
from sextant.deploying import choose_candidate, deploy
from sextant.errors import UsageError
from sextant.plugins import load_catalog
from sextant.runtime import DeployRequest
from sextant.testing.fake import NumpyMLP
from typer.testing import CliRunner

#: the plugins of this test's "environment", here and in the fresh process: the fake framework
#: and the folder deployer, no entry point
PLUGINS = {"SEXTANT_PLUGIN_MODULES": "sextant.testing.fake,sextant.testing.folder", "SEXTANT_PLUGINS": "none"}


@pytest.fixture(autouse=True)
def _plugins(monkeypatch):
    for name, value in PLUGINS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def catalog():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in PLUGINS.items():
            patch.setenv(name, value)
        return load_catalog()


@pytest.fixture(scope="module")
def package(catalog, tmp_path_factory):
    from sextant.options import OptimizeOptions
    from sextant.testing import FAST

    rng = np.random.default_rng(1)
    samples = [{"x": rng.standard_normal((4, 8)).astype(np.float32)}]
    options = OptimizeOptions(
        workspace=tmp_path_factory.mktemp("ws") / "mlp",
        max_batch_size=4,
        profiler=FAST,
        step_timeout=60,
        cutoff=0.0,
        runners=("fake-graph",),  # an exported artifact, served from the copy deploy makes
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEXTANT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog)


def sextant_cli(catalog, *args: str):
    return CliRunner().invoke(app, list(args), obj=State(catalog=catalog))


def test_deploy_folder_then_its_serve_py_answers_in_a_fresh_process(catalog, package, tmp_path):
    out = tmp_path / "served"
    args = ["deploy", "folder", str(package.path), "--to", str(out), "--max-batch-size", "2", "--json"]
    done = sextant_cli(catalog, *args)
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    best = choose_candidate(package, None, max_batch_size=2).view.id  # which regime's pick: measured
    assert (document["deployer"], document["target"], document["candidate"]) == ("folder", str(out), best)
    assert document["max_batch_size"] == 2 and "max_batch_size 2 (given)" in document["notes"]
    assert sextant.load(out / "package").best().id == best

    x = np.random.default_rng(5).standard_normal((5, 8)).astype(np.float32)  # 5 rows: batches of 2, 2, 1
    np.savez(tmp_path / "in.npz", x=x)
    env = {**os.environ, **PLUGINS}
    ran = subprocess.run(
        [sys.executable, str(out / "serve.py"), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    runner = choose_candidate(package, None, max_batch_size=2).view.load(catalog)
    parts = [runner.infer({"x": x[start : start + 2]}) for start in (0, 2, 4)]  # as served: at most 2 a call
    expected = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    with np.load(tmp_path / "out.npz") as answered:
        assert set(answered.files) == set(expected)
        for name, value in expected.items():
            np.testing.assert_array_equal(answered[name], value)


def test_the_shared_options_and_refusals_are_the_cores(catalog, package, tmp_path):
    out = tmp_path / "served"
    first = sextant_cli(catalog, "deploy", "folder", str(package.path), "--to", str(out), "--name", "mlp_v2")
    assert first.exit_code == 0, first.output
    chosen = choose_candidate(package, None).view.id  # the objective's pick, or a regime's
    assert first.stderr.startswith(f"deployed mlp_v2 ({chosen}) to {out}\n")
    assert "run:    python" in first.stderr and "mlp_v2" in (out / "README.md").read_text()
    again = sextant_cli(catalog, "deploy", "folder", str(package.path), "--to", str(out))
    assert again.exit_code == 2 and "is not empty; nothing was written" in again.stderr
    assert sextant_cli(catalog, "deploy", "folder", str(package.path), "--to", str(out), "--force").exit_code == 0
    unknown = sextant_cli(catalog, "deploy", "folder", str(package.path), "--to", str(out), "--candidate", "nope")
    assert unknown.exit_code == 2 and "no candidate 'nope'" in unknown.stderr
    nowhere = sextant_cli(catalog, "deploy", "nowhere", str(package.path))
    assert nowhere.exit_code == 2 and "nowhere" in nowhere.stderr
    with pytest.raises(UsageError, match="the folder deployer has no option colour"):
        deploy("folder", DeployRequest(package.path, str(tmp_path / "x"), options={"colour": "blue"}), catalog)
    with pytest.raises(UsageError, match="no deployer for the target 'triton'") as err:
        deploy("triton", DeployRequest(package.path, str(tmp_path / "x")), catalog)
    assert "Installed targets: folder" in err.value.hint


@pytest.fixture(scope="module")
def regimes_package(package, tmp_path_factory):
    """The package with a second candidate on the same artifact, its numbers written by hand: the
    selected best (the latency objective's) is the fastest at batch 1, the other the fastest at
    batch 4, so the package names a pick per regime."""
    from sextant.manifest import write_manifest

    folder = tmp_path_factory.mktemp("regimes") / "mlp"
    shutil.copytree(package.path, folder)
    status = json.loads((folder / "status.json").read_text())
    quick = status["selection"]["best"]
    wide = f"{quick}+wide"
    status["candidates"][wide] = json.loads(json.dumps(status["candidates"][quick]))
    made_up = {quick: {1: 10_000.0, 2: 15_000.0, 4: 16_000.0}, wide: {1: 5_000.0, 2: 18_000.0, 4: 40_000.0}}
    for cid, by_batch in made_up.items():
        profile = status["candidates"][cid]["profile"]
        kept = {p["batch"]: p for p in profile["points"] if p["batch"] in by_batch}
        assert set(kept) == set(by_batch), "the run profiled batch sizes 1, 2 and 4"
        for batch, throughput in by_batch.items():
            latency = 1000.0 * batch / throughput
            kept[batch].update(throughput=throughput, p50_ms=latency, p99_ms=1.1 * latency)
        profile["points"] = [kept[b] for b in sorted(kept)]
    selection = status["selection"]
    selection.update(objective="latency", weights={"p50_ms": 1.0}, ranking=[quick, wide], best=quick)
    selection["regimes"] = {"latency": quick, "throughput": wide}
    (folder / "status.json").write_text(json.dumps(status))
    write_manifest(folder)
    return sextant.load(folder)


def test_deploy_takes_the_regime_pick_that_fits_the_serving_batch_size(catalog, regimes_package, tmp_path):
    path = str(regimes_package.path)
    quick = regimes_package.best().id
    wide = regimes_package.best(regime="throughput").id
    assert quick != wide

    def deployed(*args: str) -> dict:
        done = sextant_cli(catalog, "deploy", "folder", path, "--to", str(tmp_path / "out"), "--force", *args, "--json")
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    # served up to batch 4, the largest profiled: the throughput pick, not best(); said on stderr
    plain = sextant_cli(catalog, "deploy", "folder", path, "--to", str(tmp_path / "plain"))
    reason = (
        f"batch <= 4 (the serving default derived from the profile): the throughput pick {wide}, the "
        f"faster there (40000/s at batch 4; the latency pick {quick}: 16000/s at batch 4)"
    )
    assert plain.exit_code == 0 and f"({wide}) to " in plain.stderr.splitlines()[0]
    assert f"\n  {reason}\n" in plain.stderr and f"- {reason}" in (tmp_path / "plain" / "README.md").read_text()
    assert sextant.load(tmp_path / "plain" / "package").best().id == wide  # what serve.py loads

    single = deployed("--max-batch-size", "1")
    assert (single["candidate"], single["max_batch_size"]) == (quick, 1)
    assert single["choice"] == {
        "candidate": quick,
        "regime": "latency",
        "serving_batch": 1,
        "reason": f"batch <= 1 (--max-batch-size): the latency pick {quick}, the faster there (10000/s at batch 1; "
        f"the throughput pick {wide}: 5000/s at batch 1)",
    }
    assert single["notes"][0] == single["choice"]["reason"]
    three = deployed("--max-batch-size", "3")  # served at most 3: measured at 2, where wide is faster
    assert three["candidate"] == wide and "(18000/s at batch 2; the latency pick" in three["choice"]["reason"]

    given = deployed("--candidate", quick)  # --candidate wins
    assert given["candidate"] == quick and given["choice"]["regime"] is None
    assert given["choice"]["reason"] == f"candidate {quick}: given (--candidate)"
