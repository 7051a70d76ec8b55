"""The report's building blocks for plugins (``sextant.api.htmlkit``): a plugin's page (``sextant
analyze``'s) is drawn and laid out by the same code as an optimize run's, so both look alike.

A page is a :class:`Page` of :class:`Section` (HTML built with :func:`table`, :func:`key_values`)
and :class:`Figure` (from :func:`lines_figure` and :func:`tradeoff_figure` over :class:`Series` and
points (:class:`Point`, labelled with what they measured); :func:`render_page` writes it as one
self-contained document.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sextant.htmlreport.bundle import INSTALL_HINT, missing_reason, plotly_bundle
from sextant.htmlreport.csvexport import to_csv
from sextant.htmlreport.data import Labelled, Series, front
from sextant.htmlreport.figures import (
    Figure,
    Style,
    base_layout,
    batch_axis,
    lines_figure,
    styles,
    tradeoff_figure,
    value_axis,
)
from sextant.htmlreport.page import (
    Banner,
    Cell,
    Column,
    Page,
    Section,
    data_link,
    esc,
    key_values,
    not_recorded,
    number_cell,
    plot_block,
    render,
    table,
    text_cell,
)
from sextant.records import Point

__all__ = [
    "INSTALL_HINT",
    "Banner",
    "Cell",
    "Column",
    "Figure",
    "Labelled",
    "Page",
    "Point",
    "Section",
    "Series",
    "Style",
    "base_layout",
    "batch_axis",
    "data_link",
    "esc",
    "footer",
    "front",
    "key_values",
    "lines_figure",
    "not_recorded",
    "number_cell",
    "plot_block",
    "render_page",
    "styles",
    "table",
    "text_cell",
    "to_csv",
    "tradeoff_figure",
    "value_axis",
]


def footer(what: str) -> str:
    """The page's last line: which sextant wrote it, when, and from what."""
    from sextant import __version__

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"Written by sextant {esc(__version__)} at {esc(now)} from {what}"


def render_page(page: Page) -> str:
    """The page as one HTML document with plotly.js embedded (no plots, and a banner saying what
    to install, where the ``sextant[report]`` extra is missing)."""
    bundle = plotly_bundle()
    if bundle is None and page.plots_missing is None:
        from dataclasses import replace

        page = replace(page, plots_missing=missing_reason())
    return render(page, bundle)
