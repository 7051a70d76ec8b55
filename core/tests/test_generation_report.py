"""What a text-generation package shows: report.html (TTFT against prompt length, ITL against batch,
tokens/s, memory, the teacher-forcing verdicts), ``sextant inspect`` and its ``--json``. One run of
the numpy causal LM serves every test; a screened candidate and a near-tie are written into a copy
of its status, as a run records them."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sextant.cli import app
from sextant.cli._common import State
from sextant.generation.config import GenerationConfig
from sextant.htmlreport import generation, genplots, read_run, render_report
from sextant.package import read_status
from sextant.optimizer.run import optimize
from sextant.plugins import load_catalog
from sextant.testing.fakelm import NumpyLM

from test_htmlreport import Page

FAST = GenerationConfig(prompt_lengths=(4, 8), new_tokens=5, batch_sizes=(1, 2), repeats=1, warmup=0)
BEST = "source:numpy-lm@cpu"
WRONG = "source:numpy-lm-noisy[noise=10.0]@cpu"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(extra_modules=["sextant.testing.fakelm"], entry_points=False)


@pytest.fixture(scope="module")
def package(catalog, tmp_path_factory):
    workspace = tmp_path_factory.mktemp("gen") / "ws"
    generators = ("numpy-lm", "numpy-lm-noisy")
    return optimize(NumpyLM(), catalog=catalog, workspace=workspace, generation=FAST, runners=generators)


def test_the_run_writes_a_page_of_what_generation_users_judge(package):
    status = read_status(package.path)
    best = status["candidates"][BEST]
    page = Page((package.path / "report.html").read_text())
    figures = page.figures
    assert set(figures) == {"ttft", "itl", "tokens", "memory", "correctness"}
    # TTFT against prompt length: the recorded ttft_ms, at the prompt lengths
    (ttft,) = [t for t in figures["ttft"]["data"] if t["name"].startswith("★")]
    assert ttft["x"] == [4, 8] and ttft["y"] == [best["ttft_ms"]["4"], best["ttft_ms"]["8"]]
    assert figures["ttft"]["layout"]["xaxis"]["title"]["text"] == "prompt length (tokens)"
    # ITL: three panels, p50/p90/p99 of each batch
    itl = figures["itl"]
    assert [a["text"] for a in itl["layout"]["annotations"]] == ["<b>p50</b>", "<b>p90</b>", "<b>p99</b>"]
    points = best["profile"]["points"]
    for axis, key in (("x", "p50_ms"), ("x2", "p90_ms"), ("x3", "p99_ms")):
        (trace,) = [t for t in itl["data"] if t["xaxis"] == axis]
        assert trace["x"] == [1, 2] and trace["y"] == [p[key] for p in points]
    (tokens,) = figures["tokens"]["data"]
    assert tokens["y"] == [p["throughput"] for p in points]
    assert "tokens/s" in tokens["text"][0]
    # the summary names the pick in tokens/s, ITL and TTFT; the settings are on the page
    point = best["best_point"]
    assert f"Selected ★ {BEST}" in page.text
    line = f"{point['throughput']:,.1f} tokens/s at batch {point['batch']} (ITL p50 {point['p50_ms']:.3f} ms"
    assert line in page.text
    assert "2 generated at random (seeded), of 4, 8 tokens" in page.text
    # the candidate table has a TTFT column per prompt length; the verdicts say where tokens diverged
    assert "TTFT ms @4" in page.text and "TTFT ms @8" in page.text
    verdicts = page.text[page.text.index("Teacher forcing") :]
    wrong = status["candidates"][WRONG]["correctness"]["outputs"]
    assert f"{WRONG} prompt 0 (4 tokens) 5 {wrong[0]['max_abs_error']:.1e}" in verdicts
    assert "report.html is not written" not in " ".join(status["notes"])


def test_a_screened_candidate_and_a_near_tie_are_shown(package):
    status = copy.deepcopy(read_status(package.path))
    other = copy.deepcopy(status["candidates"][BEST])
    screen = dict(other["profile"]["points"][0], throughput=10.0)
    other["profile"] = {"points": [screen], "threads": 2, "stopped": "screened out: 10 tokens/s", "stop": "screened"}
    other["correctness"]["outputs"][1] = {**other["correctness"]["outputs"][1], "near_ties": [3], "first_divergence": 3}
    other.pop("ttft_ms")
    status["candidates"]["source:slow@cpu"] = other
    page = Page(render_report(status))
    (marker,) = [t for t in page.figures["tokens"]["data"] if t["y"] == [10.0]]
    assert marker["mode"] == "markers"  # one screen point, not a line
    assert "1 screened" in page.text
    assert "source:slow@cpu prompt 1 (8 tokens)" in page.text and "step 3" in page.text
    report = read_run(status)
    rows = generation.points_csv(report).splitlines()
    assert rows[0] == ",".join(generation.POINT_COLUMNS)
    assert sum(r.startswith("source:slow@cpu,1,8,5,10.0,") and r.endswith(",true") for r in rows) == 1


def test_every_generation_figure_is_valid_for_plotly(package):
    go = pytest.importorskip("plotly.graph_objects")
    for figure in genplots.generation_figures(read_run(read_status(package.path))):
        assert figure.absent is None, figure.id
        go.Figure(data=list(figure.data), layout=dict(figure.layout))  # raises on any unknown property


def test_inspect_shows_the_generation_measures_and_verdicts(package, catalog):
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(package.path)], obj=State(catalog=catalog), env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    status = read_status(package.path)
    best = status["candidates"][BEST]
    text = result.output
    assert re.search(r"tok/s @1 +┃ +tok/s @2 +┃ +TTFT ms @4 +┃ +TTFT ms @8", text)
    assert f"{best['ttft_ms']['8']:.3f}" in text
    row = next(line for line in text.splitlines() if WRONG in line and "10.0%" in line)
    assert "p0:0" in row  # its greedy tokens first differ at prompt 0, step 0
    point = best["best_point"]
    assert f"best: {BEST} — {point['throughput']:,.1f} tokens/s at batch {point['batch']}" in text
    # --json: the same numbers, as status.json holds them
    result = runner.invoke(app, ["inspect", str(package.path), "--json"], obj=State(catalog=catalog))
    document = json.loads(result.stdout)
    record = document["candidates"][BEST]
    assert record["ttft_ms"] == best["ttft_ms"]
    assert {"p50_ms", "p90_ms", "p99_ms", "throughput", "memory_mb"} <= set(record["profile"]["points"][0])
    verdict = document["candidates"][WRONG]["correctness"]["outputs"][0]
    assert {"agreement", "first_divergence", "near_ties"} <= set(verdict)


def test_report_command_writes_the_generation_csv_files(package, catalog, tmp_path: Path):
    result = CliRunner().invoke(
        app, ["report", str(package.path), "-o", str(tmp_path / "r.html"), "--csv", str(tmp_path / "csv")],
        obj=State(catalog=catalog),
    )
    assert result.exit_code == 0, result.output
    ttft = (tmp_path / "csv" / "ttft.csv").read_text().splitlines()
    best = read_status(package.path)["candidates"][BEST]["ttft_ms"]
    assert ttft[0] == "candidate,prompt_length,ttft_ms"
    assert ttft[1].startswith(f"{BEST},4,") and float(ttft[1].split(",")[2]) == pytest.approx(best["4"])
    assert (tmp_path / "r.html").exists()
