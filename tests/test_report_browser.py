"""The report of a real optimize run, opened in a real browser: headless Chromium (Debian's
``chromium``) loads ``report.html`` from disk, offline, runs its scripts, and the DOM it leaves
must hold every plot, drawn, and no script error.

The test skips, loudly, only where no Chromium is installed (``make test`` installs it with
apt-get where it can); with ``SEXTANT_REQUIRE_BROWSER=1`` a missing browser fails it instead.
``SEXTANT_SCREENSHOT=path.png`` keeps the screenshot it takes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from _support import mlp_args, sextant

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",  # as root (CI) Chromium refuses to start without it; the page is our own file
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)


def chromium() -> str:
    found = os.environ.get("SEXTANT_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if found:
        return found
    reason = (
        "NO BROWSER: Chromium is not installed, so the report was NOT checked in a browser "
        "(apt-get install chromium; `make test` does it where apt-get is available)"
    )
    if os.environ.get("SEXTANT_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    warnings.warn(reason, stacklevel=1)
    pytest.skip(reason)


def run_browser(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium with a fresh profile; ``--virtual-time-budget`` lets the page's scripts finish
    (virtual time runs ahead while the page is idle) with no wall-clock wait in the test."""
    return subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=60000", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def plot_segments(dom: str) -> dict[str, str]:
    """Each figure block's HTML in the rendered DOM, by figure id."""
    starts = [(m.group(1), m.start()) for m in re.finditer(r'<figure class="plot-block[^"]*" id="fig-([\w-]+)"', dom)]
    return {
        fid: dom[start : starts[i + 1][1] if i + 1 < len(starts) else dom.index("</section>", start)]
        for i, (fid, start) in enumerate(starts)
    }


def test_the_report_of_a_real_run_draws_every_plot_in_a_real_browser(tmp_path):
    browser = chromium()
    workspace = tmp_path / "mlp"
    result = sextant(*mlp_args(workspace, "--runners", "torch-eager,torchscript,onnxruntime"))
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    page = workspace / "report.html"
    assert f"report: {page}" in result.stderr  # the CLI says where the page is
    expected = json.loads(
        re.search(r'<script id="figures" type="application/json">(.*?)</script>', page.read_text(), re.S).group(1)
    )
    ids = [f["id"] for f in expected]
    assert {"throughput", "latency", "tradeoff", "correctness", "memory"} <= set(ids)

    opened = run_browser(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert opened.returncode == 0, opened.stderr[-3000:]
    dom = opened.stdout
    ready = re.search(r'<div id="report-ready" hidden="" data-plots="(\d+)"[^>]*>', dom)
    assert ready, "the page's script never finished: " + opened.stderr[-3000:]
    assert int(ready.group(1)) == len(ids)
    errors = re.search(r'<div id="script-errors"[^>]*>.*?<ul>(.*?)</ul>', dom, re.S)
    assert errors and errors.group(1) == "", errors and errors.group(1)
    assert "Uncaught" not in opened.stderr, opened.stderr[-3000:]

    segments = plot_segments(dom)
    for fid in ids:
        block = segments[fid]
        assert 'data-drawn="1"' in block, fid
        assert 'class="main-svg"' in block, fid
        assert block.count('class="point"') >= 2, f"{fid}: no markers or bars drawn"
    best = status["selection"]["best"]
    assert best in dom  # named in the summary, the table and the legends
    assert len(segments["stages"]) and "no runner recorded stage times" in segments["stages"]

    shot = tmp_path / "report.png"
    taken = run_browser(
        browser, tmp_path / "profile2", "--window-size=1280,1800", f"--screenshot={shot}", page.as_uri()
    )
    assert taken.returncode == 0, taken.stderr[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000  # not a blank page
    if os.environ.get("SEXTANT_SCREENSHOT"):
        shutil.copy(shot, os.environ["SEXTANT_SCREENSHOT"])
