"""The HTML report and its CSV files, on packages written by the fake numpy framework's runs, by an
earlier sextant (tests/data/status-0.1.0-658c4b4.json, trimmed from a real run of 658c4b4), and
made up (100 candidates). Drawing the plots in a real browser is tests/test_report_browser.py's job;
here every figure is checked against plotly's own schema."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sextant
from sextant import htmlreport
from sextant.cli import app
from sextant.cli._common import State
from sextant.errors import CorrectnessError
from sextant.htmlreport import bundle, csvexport, plots, sections
from sextant.htmlreport.data import POINT_FIELDS, read_run
from sextant.package import read_status
from sextant.pairing import Ratio
from sextant.testing.fake import NumpyMLP
from typer.testing import CliRunner

DATA = Path(__file__).parent / "data"
OLD = DATA / "status-0.1.0-658c4b4.json"


class Page(HTMLParser):
    """What the tests read from a page: element ids, text, the figures' JSON, the scripts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str | None]] = {}
        self.chunks: list[str] = []
        self.scripts: dict[str, str] = {}
        self._script: str | None = None
        self._style = False
        self.feed(text)
        self.text = re.sub(r"\s+", " ", " ".join(self.chunks))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] = attrs
        if tag == "script":
            self._script = attrs.get("id") or f"inline-{len(self.scripts)}"
            self.scripts[self._script] = ""
        self._style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None
        self._style = False

    def handle_data(self, data):
        if self._script is not None:
            self.scripts[self._script] += data
        elif not self._style:
            self.chunks.append(data)

    @property
    def figures(self) -> dict[str, dict]:
        return {f["id"]: f for f in json.loads(self.scripts["figures"])}


def optimize(catalog, options, samples, **kw):
    return sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog, **kw)


def page_of(folder: Path) -> Page:
    return Page((folder / "report.html").read_text())


@pytest.fixture
def package(fake_catalog, options, samples):
    return optimize(fake_catalog, replace(options, precisions=("fp32", "fp16")), samples)


# -- a run's page ---------------------------------------------------------------------------------


def test_every_run_writes_a_self_contained_page_with_its_plots(package):
    status = package.status
    page = page_of(package.path)
    best = status["selection"]["best"]
    record = status["candidates"][best]
    # the summary: model, machine, versions, best and its speedup and correctness, objective, run
    assert f"Selected ★ {best}" in page.text
    paired = (status["selection"].get("paired") or {}).get("speedup")  # re-measured interleaved, when it was
    speedup = Ratio.from_json(paired).describe() if paired else f"{record['speedup']:.2f}×"
    assert f"{speedup} the baseline" in page.text
    assert status["host"]["cpu"] in page.text
    assert f"{status['host']['cores']} cores; {status['host']['threads']} threads used" in page.text
    assert f"Python {status['host']['python']}" in page.text
    assert f"{record['correctness']['atol']:g}" in page.text
    assert "objective throughput" in page.text
    run = status["run"]
    assert f"{run['cached']} of {run['cached'] + run['ran']} results reused" in page.text
    # every candidate is a row of the table
    for cid in status["candidates"]:
        assert cid in page.text
    # plots: each drawn one has data and a place on the page; stage times were not recorded
    figures = page.figures
    assert set(figures) == {"throughput", "latency", "tradeoff", "correctness", "memory"}
    for fid, figure in figures.items():
        assert f"plot-{fid}" in page.ids
        assert any(len(trace.get("x", [])) for trace in figure["data"]), fid
    assert "fig-stages" in page.ids and "no runner recorded stage times" in page.text
    # nothing is fetched: no src= or href= leaves the file except the CSV data links and the logs
    html = (package.path / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "plotly-bundle" in page.scripts and len(page.scripts["plotly-bundle"]) > 500_000


def test_the_throughput_plot_has_one_line_per_profiled_candidate_on_a_log2_axis(package):
    status = package.status
    figure = page_of(package.path).figures["throughput"]
    profiled = {cid: r for cid, r in status["candidates"].items() if r.get("profile", {}).get("points")}
    lines = [t for t in figure["data"] if t["legendgroup"] != "unstable"]
    assert len(lines) == len(profiled)
    for trace in lines:
        cid = trace["legendgroup"]
        screened = profiled[cid]["profile"].get("stop") == "screened"  # a short screen, not a sweep
        assert trace["mode"] == ("markers" if screened else "lines+markers")
        points = profiled[cid]["profile"]["points"]
        assert trace["x"] == [p["batch"] for p in points]
        assert trace["y"] == [p["throughput"] for p in points]
    axis = figure["layout"]["xaxis"]
    assert axis["type"] == "log" and axis["tickvals"][:3] == [1, 2, 4]


def test_measurements_that_did_not_settle_are_ringed():
    status = json.loads(OLD.read_text())
    points = [p for r in status["candidates"].values() for p in r.get("profile", {}).get("points", [])]
    points[0]["stable"], points[3]["stable"] = False, False
    unsettled = sorted((p["batch"], p["throughput"]) for p in points if p["stable"] is False)
    figure = next(f for f in plots.run_figures(read_run(status)) if f.id == "throughput")
    rings = [t for t in figure.data if t.get("legendgroup") == "unstable"]
    assert len(rings) == 1 and sorted(zip(rings[0]["x"], rings[0]["y"])) == unsettled


def test_a_screened_candidate_is_points_not_a_line_and_is_counted_as_screened():
    """Issue 30: screened candidates were drawn as lines from batch 1 to the largest as if swept, and
    counted as "ok"; a baseline 40× slower than the best lay flat on 0 of a linear axis."""
    status = json.loads(OLD.read_text())
    screened = "source:torch-compile@cpu"
    status["candidates"][screened]["profile"]["stop"] = "screened"
    report = read_run(status)
    figure = next(f for f in plots.run_figures(report) if f.id == "throughput")
    drawn = {t["legendgroup"]: t for t in figure.data}
    assert drawn[screened]["mode"] == "markers" and drawn[screened]["x"] == [1, 2]
    assert drawn["source:torch-eager@cpu"]["mode"] == "lines+markers"
    assert figure.layout["yaxis"]["type"] == "log"  # 38/s to 31,425/s
    assert "points, not a line" in figure.caption
    assert "1 screened" in sections.result_card(report) and "3 ok" in sections.result_card(report)


def test_screened_candidates_merged_into_the_grey_trace_stay_unjoined():
    from sextant.htmlreport.data import Series
    from sextant.htmlreport.figures import OTHERS, Style, _drawing_order

    series = [Series("a", (1, 64), (10.0, 90.0), markers_only=True), Series("b", (1, 2), (5.0, 9.0))]
    style = {s.name: Style("#999", s.name, group=OTHERS) for s in series}
    ((merged, _),) = _drawing_order(series, style)
    assert merged.x == (1, None, 64, None, 1, 2, None)


def test_the_tradeoff_plot_marks_the_selected_point_and_the_front(package):
    status = package.status
    figure = page_of(package.path).figures["tradeoff"]
    best = status["candidates"][status["selection"]["best"]]["best_point"]
    star = next(t for t in figure["data"] if t["name"] == "selected")
    assert (star["x"], star["y"]) == ([best["p99_ms"]], [best["throughput"]])
    edge = next(t for t in figure["data"] if t["name"] == "trade-off front")
    everything = [p for r in status["candidates"].values() for p in r.get("profile", {}).get("points", [])]
    for p99, throughput in zip(edge["x"], edge["y"]):  # no point beats a front point on both
        assert not any(p["p99_ms"] < p99 and p["throughput"] > throughput for p in everything)
    assert max(edge["y"]) == max(p["throughput"] for p in everything)


def test_the_correctness_plot_shows_each_outputs_error_and_tolerance(package):
    status = package.status
    figure = page_of(package.path).figures["correctness"]
    assert figure["layout"]["xaxis"]["type"] == "log"
    tolerance = next(t for t in figure["data"] if t["name"] == "absolute tolerance")
    judged = {cid: r for cid, r in status["candidates"].items() if r.get("correctness")}
    assert sorted(tolerance["x"]) == sorted(o["atol"] for r in judged.values() for o in r["correctness"]["outputs"])
    errors = next(t for t in figure["data"] if t["name"] == "output output_0")
    fp16 = next(cid for cid, r in judged.items() if r["precision"] == "fp16")
    at = [label.removeprefix("★ ") for label in errors["y"]].index(fp16)  # the best is starred
    assert errors["x"][at] == judged[fp16]["correctness"]["outputs"][0]["max_abs_error"] > 0


def test_every_figure_is_valid_for_plotly(package, tmp_path):
    go = pytest.importorskip("plotly.graph_objects")
    status = read_status(package.path)
    status["candidates"][status["selection"]["best"]]["profile"]["points"][0]["stages_ms"] = {
        "copy": 0.1,
        "compute": 1.0,
    }
    status["selection"]["latency_budget_ms"] = 5.0
    figures = plots.run_figures(read_run(status))
    assert {f.id for f in figures if f.absent is None} >= {"stages", "tradeoff", "correctness"}
    for figure in figures:
        if figure.absent is None:
            go.Figure(data=list(figure.data), layout=dict(figure.layout))  # raises on any unknown property


# -- CSV -----------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_csv_columns_and_values_are_status_json(package, tmp_path):
    written = htmlreport.write_csv(package.path, tmp_path / "csv")
    assert [p.name for p in written] == ["points.csv", "candidates.csv"]
    status = package.status
    rows = read_csv(tmp_path / "csv" / "candidates.csv")
    assert tuple(rows[0]) == csvexport.CANDIDATE_COLUMNS
    assert [r["candidate"] for r in rows] == list(status["candidates"])
    for row in rows:
        record = status["candidates"][row["candidate"]]
        assert row["status"] == record["status"]
        assert row["precision"] == record["precision"]
        assert json.loads(row["options"]) == record["options"]
        assert row["selected"] == ("true" if row["candidate"] == status["selection"]["best"] else "false")
        best = record.get("best_point")
        if best is None:
            assert row["best_throughput"] == "" and row["best_batch"] == ""
            continue
        assert float(row["best_throughput"]) == best["throughput"]  # exact: written unrounded
        assert float(row["best_p99_ms"]) == best["p99_ms"]
        assert int(row["best_batch"]) == best["batch"]
        assert float(row["speedup"]) == record["speedup"]
        outputs = record["correctness"]["outputs"]
        assert float(row["max_abs_error"]) == max(o["max_abs_error"] for o in outputs)
        assert int(row["rank"]) == status["selection"]["ranking"].index(row["candidate"]) + 1
    points = read_csv(tmp_path / "csv" / "points.csv")
    assert tuple(points[0])[: 6 + len(POINT_FIELDS)] == csvexport.POINT_PREFIX + POINT_FIELDS
    expected = [(cid, p) for cid, r in status["candidates"].items() for p in r.get("profile", {}).get("points", [])]
    assert len(points) == len(expected)
    for row, (cid, p) in zip(points, expected):
        assert row["candidate"] == cid
        for name in POINT_FIELDS:
            value = p.get(name)
            if value is None:
                assert row[name] == ""
            elif isinstance(value, bool):
                assert row[name] == str(value).lower()
            else:
                assert float(row[name]) == value, name


def test_stage_times_become_one_column_per_stage():
    status = json.loads(OLD.read_text())
    cid = status["selection"]["best"]
    status["candidates"][cid]["profile"]["points"][0]["stages_ms"] = {"h2d": 0.25, "compute": 1.5}
    rows = list(csv.DictReader(io.StringIO(csvexport.points_csv(read_run(status)))))
    assert list(rows[0])[-2:] == ["stage_h2d_ms", "stage_compute_ms"]
    timed = [r for r in rows if r["stage_h2d_ms"]]
    assert [(r["candidate"], r["stage_h2d_ms"], r["stage_compute_ms"]) for r in timed] == [(cid, "0.25", "1.5")]


# -- failures, no selection, an earlier sextant ----------------------------------------------------


def test_a_package_with_failures_says_what_failed_and_why(fault_catalog, options, samples):
    package = optimize(fault_catalog("crash", "raise", "wrong"), options, samples)
    page = page_of(package.path)
    failures = page.text[page.text.index("Failures (") :]
    status = package.status
    crash = status["steps"]["fault-crash"]
    assert crash["cause"] == "crash"
    assert "fault-crash step failed crash" in failures
    assert "about to crash" in failures  # the tail of its log
    assert "unsupported operator 'Frobnicate' in layer 3" in failures
    wrong = next(cid for cid in status["candidates"] if cid.startswith("fault-wrong"))
    assert status["candidates"][wrong]["status"] == "incorrect"
    assert f"{wrong} candidate incorrect" in failures
    assert crash["log"] in failures and page.ids  # the full log is named ...
    html = (package.path / "report.html").read_text()
    assert f'href="{crash["log"]}"' in html  # ... and linked, relative to the package
    assert "Failures (3)" in page.text
    assert status["selection"]["best"] in page.text  # the run still selected something


def test_a_package_with_no_selection_says_why(fault_catalog, options, samples):
    with pytest.raises(CorrectnessError):
        optimize(fault_catalog("wrong"), replace(options, formats=("fault-graph",)), samples)
    status = read_status(options.workspace)
    reason = status["selection"]["reason"]
    page = page_of(options.workspace)
    assert f"No candidate was selected: {reason}." in page.text
    # the reference alone was profiled: it is the only line; the failed candidate's errors are plotted
    throughput = page.figures["throughput"]["data"]
    lines = [t for t in throughput if t["legendgroup"] != "unstable"]
    assert [t["legendgroup"] for t in lines] == ["source:numpy-eager@cpu"]
    # on a loaded machine a measurement may not settle: its ring is drawn on the reference's own points
    for ring in (t for t in throughput if t["legendgroup"] == "unstable"):
        assert set(zip(ring["x"], ring["y"])) <= set(zip(lines[0]["x"], lines[0]["y"])), ring
    assert not any(t.get("name") == "selected" for t in page.figures["tradeoff"]["data"])
    wrong = next(t for t in page.figures["correctness"]["data"] if t["name"] == "output output_0")
    assert wrong["marker"]["symbol"][wrong["y"].index("fault-wrong:fault-graph@cpu")] == "x"
    assert "fault-wrong:fault-graph@cpu candidate incorrect" in page.text


def test_a_package_from_the_previous_sextant_renders_saying_what_was_not_recorded(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(OLD, folder / "status.json")
    status = json.loads(OLD.read_text())
    assert "cpu" not in status["host"] and "run" not in status  # what that version did not write
    result = CliRunner().invoke(app, ["report", str(folder), "--csv", str(tmp_path / "csv")], obj=State(catalog=None))
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [
        str(folder / "report.html"),
        str(tmp_path / "csv" / "points.csv"),
        str(tmp_path / "csv" / "candidates.csv"),
    ]
    page = page_of(folder)
    assert f"Selected ★ {status['selection']['best']}" in page.text
    assert "CPU not recorded" in page.text
    assert "took not recorded" in page.text
    assert "(counted from the records)" in page.text
    assert "Nothing to plot: memory was not recorded" in page.text
    assert {"throughput", "latency", "tradeoff", "correctness"} <= set(page.figures)
    rows = read_csv(tmp_path / "csv" / "points.csv")
    assert rows and all(r["memory_mb"] == "" for r in rows)


# -- the run goes on whatever happens to the page ------------------------------------------------


def test_a_report_that_cannot_be_written_is_a_note_not_a_failed_run(fake_catalog, options, samples, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(htmlreport, "write_report", broken)
    package = optimize(fake_catalog, options, samples)
    assert package.status["selection"]["best"] is not None
    assert "report.html was not written: RuntimeError: disk on fire" in package.status["notes"]
    assert not (package.path / "report.html").exists()


def test_without_plotly_the_page_has_its_tables_and_says_how_to_get_plots(fake_catalog, options, samples, monkeypatch):
    monkeypatch.setattr(bundle, "plotly_version", lambda: None)
    bundle.plotly_bundle.cache_clear()
    notes = []
    try:
        package = optimize(fake_catalog, options, samples, on_event=lambda e: notes.append(getattr(e, "text", None)))
    finally:
        bundle.plotly_bundle.cache_clear()
    page = page_of(package.path)
    assert "plotly-bundle" not in page.scripts and page.figures == {}
    assert "This page has no plots: plotly is not installed (pip install 'sextant[report]' adds it)" in page.text
    assert (
        "report.html has tables but no plots: plotly is not installed (pip install 'sextant[report]' adds it)" in notes
    )
    assert package.status["selection"]["best"] in page.text


# -- the command ---------------------------------------------------------------------------------


def test_report_command_writes_where_asked_and_prints_json(fault_catalog, options, samples, tmp_path):
    package = optimize(fault_catalog("raise"), options, samples)
    out = tmp_path / "elsewhere" / "r.html"
    result = CliRunner().invoke(app, ["report", str(package.path), "-o", str(out), "--json"], obj=State(catalog=None))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"report": str(out), "csv": [], "plots": True}
    log = package.status["steps"]["fault-raise"]["log"]
    assert f'href="../{package.path.name}/{log}"' in out.read_text()  # the log, linked from where the page is


def test_report_command_on_a_folder_that_is_not_a_package_fails_clearly(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)], obj=State(catalog=None))
    assert result.exit_code == 1
    assert "is not a sextant package" in result.output


def test_help_and_plugins_import_no_plotting_library():
    code = (
        "import sys\n"
        "from sextant.cli import main\n"
        "for args in (['--help'], ['plugins', '--json'], ['report', '--help']):\n"
        "    try: main(args)\n"
        "    except SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', 'matplotlib') or m.startswith('sextant.htmlreport')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


# -- text that could break the page, and many candidates -------------------------------------------


def test_hostile_text_is_escaped_everywhere(tmp_path):
    status = json.loads(OLD.read_text())
    evil = "</script><script>window.pwned=1</script><b>x</b>"
    cid = next(iter(status["candidates"]))
    record = status["candidates"].pop(cid)
    record.update(status="failed", reason=evil, log_tail=evil, cause="exception")
    status["candidates"][evil] = record
    status["notes"] = [evil]
    html = htmlreport.render_report(status)
    assert evil not in html
    page = Page(html)
    assert "window.pwned" not in "".join(v for k, v in page.scripts.items() if k != "figures")
    assert page.text.count(evil) >= 3  # shown as text: the reason, the log tail, the note
    json.loads(page.scripts["figures"])  # still valid JSON


def many(status: dict, n: int) -> dict:
    """``status`` with ``n`` candidates cloned from its profiled ones, numbers varied."""
    out = copy.deepcopy(status)
    sources = [(cid, r) for cid, r in status["candidates"].items() if r.get("profile", {}).get("points")]
    out["candidates"] = {}
    for i in range(n):
        cid, record = sources[i % len(sources)]
        clone = copy.deepcopy(record)
        for p in clone["profile"]["points"]:
            p["throughput"] *= 1 + i / n
        out["candidates"][f"{cid}#{i}"] = clone
    out["selection"]["ranking"] = list(out["candidates"])[: n // 2]
    out["selection"]["best"] = out["selection"]["ranking"][0]
    out["baseline"] = list(out["candidates"])[1]
    return out


def test_a_hundred_candidates_keep_the_plots_readable_and_light():
    status = many(json.loads(OLD.read_text()), 100)
    report = read_run(status)
    throughput = next(f for f in plots.run_figures(report) if f.id == "throughput")
    lines = [t for t in throughput.data if t["mode"] == "lines+markers"]
    colored = [t for t in lines if t["legendgroup"] != plots.OTHERS]
    (grey,) = [t for t in lines if t["legendgroup"] == plots.OTHERS]  # the rest: one trace, one entry
    assert len(colored) == len(plots.PALETTE) - 2
    others = [c for c in report.candidates if c.id not in {t["legendgroup"] for t in colored}]
    assert grey["name"] == f"other candidates ({len(others)})" and grey["connectgaps"] is False
    assert [x for x in grey["x"] if x is not None] == [p.batch for c in others for p in c.points]
    assert grey["x"].count(None) == len(others)  # a gap after each line
    assert any(t["name"].startswith("★ ") for t in colored) and any("(baseline)" in t["name"] for t in colored)
    tradeoff = next(f for f in plots.run_figures(report) if f.id == "tradeoff")
    assert sum(len(t["x"]) for t in tradeoff.data if t["mode"] == "markers" and t["name"] != "selected") == len(
        report.points
    )
    html = htmlreport.render_report(status)
    assert len(html) < 4_000_000
