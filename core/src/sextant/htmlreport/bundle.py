"""plotly.js for the page: the bundle the ``plotly`` distribution ships, gzipped and base64-encoded.

plotly.js is 4.8 MB as shipped (plotly 7); gzipped it is 1.5 MB, 2 MB in base64. The page unpacks
it with the browser's own ``DecompressionStream`` (Chrome 80, Firefox 113, Safari 16.4 and later),
so a report stays one file that opens offline and weighs about 2 MB rather than 5. Packing takes
about half a second, so the packed bundle is kept in sextant's cache folder, keyed by the plotly
version; if the cache cannot be written it is packed in memory each time.

``plotly`` is the ``sextant[report]`` extra: without it :func:`plotly_bundle` returns ``None`` and
the page is written with its tables and no plots, saying how to get them.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "pip install 'sextant[report]'"


@dataclass(frozen=True)
class Bundle:
    """plotly.js, gzipped then base64-encoded, and the versions it came from."""

    plotly_version: str  # the Python distribution
    js_version: str  # plotly.js, read from the bundle's banner
    packed: str


def plotly_version() -> str | None:
    """The installed ``plotly`` distribution's version, or ``None`` when it is not installed."""
    try:
        return importlib.metadata.version("plotly")
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_reason() -> str | None:
    """Why the page cannot have plots here, with what to run; ``None`` when it can."""
    if plotly_version() is None:
        return f"plotly is not installed ({INSTALL_HINT} adds it)"
    return None


@functools.cache
def plotly_bundle() -> Bundle | None:
    """The packed bundle, or ``None`` when plotly is not installed."""
    version = plotly_version()
    if version is None:
        return None
    cached = _cache_file(version)
    if cached is not None:
        bundle = _read_cached(cached, version)
        if bundle is not None:
            return bundle
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    js_version = _js_version(js)
    packed = base64.b64encode(gzip.compress(js.encode("utf-8"), compresslevel=6, mtime=0)).decode("ascii")
    if cached is not None:
        try:
            tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
            tmp.write_text(f"{js_version} {_digest(packed)}\n{packed}", encoding="ascii")
            tmp.replace(cached)
        except OSError:
            pass
    return Bundle(version, js_version, packed)


def _read_cached(path: Path, version: str) -> Bundle | None:
    """The cached bundle, if it is there and whole (its digest matches)."""
    try:
        head, packed = path.read_text(encoding="ascii").split("\n", 1)
        js_version, digest = head.split(" ")
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return Bundle(version, js_version, packed) if digest == _digest(packed) else None


def _digest(packed: str) -> str:
    return hashlib.sha256(packed.encode("ascii")).hexdigest()


def _js_version(js: str) -> str:
    """``v4.1.1`` from the bundle's banner (``* plotly.js v4.1.1``)."""
    head = js[:400]
    marker = "plotly.js v"
    at = head.find(marker)
    if at < 0:
        return "unknown"
    return head[at + len(marker) - 1 :].split()[0]


def _cache_file(version: str) -> Path | None:
    try:
        from sextant.cache import cache_dir

        folder = cache_dir() / "report"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"plotly-{version}.js.gz.b64"
    except OSError:
        return None
