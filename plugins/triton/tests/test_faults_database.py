"""The measurements' database, when it is wrong: a ``--storage`` URL that cannot work is named with
the forms that do before anything starts; a damaged ``measurements.sqlite`` is set aside (and said)
instead of blocking every run; a database that cannot be reached, or that goes away in the middle
of a run, is a clear stop that the same command resumes from. Real SQLite files and a real
PostgreSQL server."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

import pytest
from _processes import servers_of
from _serving import write_repository
from sextant.api import SextantError, UsageError
from sextant_triton.analyze import analyze
from sextant_triton.analyze.settings import AnalyzeSettings, ModelSettings, Range
from sextant_triton.analyze.store import StoreError
from sextant_triton.perf import Windows, missing
from sextant_triton.server import free_port
from sextant_triton.testing import NO_SERVER

SETTINGS = AnalyzeSettings(
    models=(ModelSettings("scale"),),
    max_batch_size=Range(4, 8),
    instance_count=Range(1, 2),
    top_n=0,
    windows=Windows(interval_ms=200, stability=50.0, max_trials=5),
)
@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return write_repository(tmp_path_factory.mktemp("repo") / "models")


def test_a_damaged_measurements_file_is_set_aside_and_said(repository, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    damaged = b"not a database " * 400
    (out / "measurements.sqlite").write_bytes(damaged)
    said: list[str] = []
    with pytest.raises(UsageError, match="nothing stored"):  # --rerank: it held nothing readable
        analyze(repository, SETTINGS, output=out, rerank=True, log=said.append)
    assert (out / "measurements.sqlite.unreadable").read_bytes() == damaged
    (line,) = said
    assert "is not a readable database (file is not a database)" in line
    assert "kept aside as measurements.sqlite.unreadable" in line
    import sqlite3

    with sqlite3.connect(out / "measurements.sqlite") as db:  # a new, working one in its place
        assert db.execute("SELECT count(*) FROM sextant_measurements").fetchone() == (0,)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgres://me@db.example/runs", "postgres:// is not a database sextant can keep measurements in"),
        ("mongodb://db.example/runs", "mongodb:// is not a database"),
        ("sqlite:////no/such/folder/m.sqlite", "the folder /no/such/folder of that SQLite file does not exist"),
        ("runs.sqlite", "is not a database URL"),
    ],
)
def test_a_storage_url_that_cannot_work_is_named_before_anything_starts(repository, tmp_path, url, said):
    with pytest.raises(UsageError) as info:
        analyze(repository, replace(SETTINGS, storage=url), output=tmp_path / "out")
    assert said in info.value.message and url.split("@")[-1].split("/")[-1] in info.value.message
    assert "postgresql+psycopg://" in (info.value.hint or "") and "sqlite:///" in (info.value.hint or "")
    assert not (tmp_path / "out").exists()  # nothing deployed, started or written


def test_the_command_names_a_misspelled_storage_url(repository, tmp_path):
    from sextant.cli import State, with_plugin_commands
    from sextant.plugins import load_catalog
    from typer.testing import CliRunner

    catalog = load_catalog()
    done = CliRunner().invoke(
        with_plugin_commands(catalog),
        ["analyze", str(repository), "-m", "scale", "--storage", "postgres://me@localhost/runs"],
        obj=State(catalog),
    )
    text = " ".join(done.output.split())
    assert done.exit_code == 2, text
    assert "--storage postgres://me@localhost/runs" in text and "did you mean postgresql+psycopg://" in text
    assert "unexpected" not in text


@pytest.mark.skipif(find_spec("psycopg") is None, reason="psycopg is not installed")
def test_an_unreachable_database_is_named(repository, tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/runs"  # nothing listens there
    with pytest.raises(StoreError) as info:
        analyze(repository, replace(SETTINGS, storage=url), output=tmp_path / "out")
    assert f"cannot open the measurements' database {url}" in info.value.message
    assert "Check that the server runs" in (info.value.hint or "")


@pytest.mark.skipif(NO_SERVER is not None, reason=str(NO_SERVER))
@pytest.mark.skipif(missing() is not None, reason=str(missing()))
@pytest.mark.parametrize("search", ["quick", "optuna"])  # optuna keeps its study in the same database
def test_a_database_that_goes_away_is_a_clear_stop_and_the_same_command_resumes(repository, tmp_path, search):
    from _postgres import require_postgres, start_postgres

    require_postgres()
    folder = Path(tempfile.mkdtemp(prefix="sx-pg-", dir="/tmp"))  # one the server's user can reach:
    folder.chmod(0o755)  # its data then stays there across a stop
    database = start_postgres(folder)
    try:
        assert database.temporary is None
        url = database.create_database("analyze")
        settings = replace(SETTINGS, storage=url, search=search, max_measurements=4)

        def stop_database(point, record):
            database.stop()  # PostgreSQL goes away after the first measurement

        with pytest.raises(StoreError) as info:
            analyze(repository, settings, output=tmp_path / "out", on_measured=stop_database)
        assert isinstance(info.value, SextantError)  # said as an error, not as a bug to report
        assert "stopped answering" in info.value.message and "run the same command" in (info.value.hint or "")
        assert not servers_of(tmp_path / "out" / "server")

        database = start_postgres(folder, port=database.port)  # back, with what it held
        again = analyze(repository, replace(settings, budget_s=600.0), output=tmp_path / "out")
        assert again.reused >= 1 and again.measured >= 1
    finally:
        database.stop()
        shutil.rmtree(folder, ignore_errors=True)
