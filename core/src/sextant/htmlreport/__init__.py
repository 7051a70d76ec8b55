"""The HTML report: one self-contained page per run (``report.html``), and its CSV files.

- :mod:`.data`: ``status.json`` → typed rows and series (any schema-1 package, old ones included);
- :mod:`.plots`: plotly figure specifications (plain dicts; no plotting library in Python);
- :mod:`.page`: the page itself: sections, sortable tables, the embedded plotly.js, its script;
- :mod:`.sections`: what the page of an optimize run says;
- :mod:`.generation`: what the page of a text-generation run says (TTFT, ITL, tokens/s, verdicts);
- :mod:`.csvexport`: ``points.csv`` and ``candidates.csv`` (columns documented there);
- :mod:`.bundle`: plotly.js from the ``plotly`` distribution (the ``sextant[report]`` extra).

``sextant optimize`` writes ``report.html`` into the package at the end of every run;
``sextant report PACKAGE`` writes it again (``-o`` elsewhere, ``--csv DIR`` for the CSV files).
Importing this package imports no plotting library.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sextant.htmlreport.bundle import INSTALL_HINT, missing_reason, plotly_bundle
from sextant.htmlreport.data import RunReport, read_run

if TYPE_CHECKING:
    from sextant.package.document import RunDocument

__all__ = [
    "INSTALL_HINT",
    "REPORT",
    "missing_reason",
    "read_package",
    "read_run",
    "render_report",
    "write_csv",
    "write_report",
]

#: the report's file name inside a package
REPORT = "report.html"


def render_report(
    status: RunDocument | Mapping[str, Any], *, package: Path | None = None, output: Path | None = None
) -> str:
    """The page for a package's ``status.json`` (typed, or its content). ``package`` and ``output`` (where the page
    will be written) make the log links relative; without them logs are named, not linked."""
    from sextant import __version__
    from sextant.htmlreport import csvexport, page, plots, sections

    report = read_run(status)
    bundle = plotly_bundle()
    if report.generates:
        from sextant.htmlreport import generation, genplots

        figures = genplots.generation_figures(report)
        build = generation.generation_page
        csv_files = {
            "points.csv": generation.points_csv(report),
            "ttft.csv": generation.ttft_csv(report),
            "candidates.csv": csvexport.candidates_csv(report),
        }
    else:
        figures = plots.run_figures(report)
        build = sections.run_page
        csv_files = {"points.csv": csvexport.points_csv(report), "candidates.csv": csvexport.candidates_csv(report)}
    downloads = " ".join(page.data_link(name, text) for name, text in csv_files.items())
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    footer = f"Written by sextant {page.esc(__version__)} at {page.esc(now)}"
    if package is not None:
        footer += f" from <span class=id>{page.esc(package / 'status.json')}</span>"
    if report.sextant_version and report.sextant_version != __version__:
        footer += f" (recorded by sextant {page.esc(report.sextant_version)})"
    footer += "."
    if bundle is not None:
        footer += f" Plots drawn by plotly.js {page.esc(bundle.js_version)} (plotly {page.esc(bundle.plotly_version)}), embedded."
    built = build(
        report,
        figures,
        link=_linker(package, output),
        downloads=downloads,
        written=footer,
        plots_missing=missing_reason() if bundle is None else None,
    )
    return page.render(built, bundle)


def write_report(package: Path | str, output: Path | str | None = None) -> Path:
    """Write the page of the package at ``package`` to ``output`` (default: ``report.html`` in the
    package); returns its path. Raises :class:`~sextant.errors.PackageError` for a folder that is
    not a package. Without plotly the page has no plots and says so (:func:`missing_reason`)."""
    from sextant.atomic import write_text
    from sextant.package import read_document

    folder = Path(package)
    status = read_document(folder)
    target = Path(output) if output is not None else folder / REPORT
    text = render_report(status, package=folder, output=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, text)  # atomically: a reader never sees half a page
    return target


def write_csv(package: Path | str, folder: Path | str) -> list[Path]:
    """``points.csv`` and ``candidates.csv`` of the package at ``package``, in ``folder`` (and
    ``ttft.csv`` for a text-generation run)."""
    from sextant.htmlreport.csvexport import write_csv as write
    from sextant.package import read_document

    report = read_run(read_document(Path(package)))
    if not report.generates:
        return write(report, Path(folder))
    from sextant.htmlreport import csvexport, generation

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    files = {
        "points.csv": generation.points_csv(report),
        "ttft.csv": generation.ttft_csv(report),
        "candidates.csv": csvexport.candidates_csv(report),
    }
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
    return [target / name for name in files]


def _linker(package: Path | None, output: Path | None) -> Callable[[str], str | None]:
    """Paths inside the package as links relative to where the page is written."""

    def link(relative: str) -> str | None:
        if package is None or output is None:
            return None
        return Path(os.path.relpath(package / relative, output.parent)).as_posix()

    return link


def read_package(package: Path | str) -> RunReport:
    """The typed view of a package's ``status.json`` (for ``sextant analyze`` and tests)."""
    from sextant.package import read_document

    return read_run(read_document(Path(package)))
