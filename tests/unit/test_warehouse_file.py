"""The warehouse file opened once for a run's steps (`store/warehouse_file.py`), and given up for
each dbt command, which opens it from another process."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dagster_project.store import warehouse_file

OPEN_FOR_WRITING = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"


def _another_process_can_write(path) -> bool:
    """Whether another process (as dbt's) can open the file for writing now."""
    return subprocess.run([sys.executable, "-c", OPEN_FOR_WRITING, str(path)], capture_output=True).returncode == 0


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table t as select 1 as x")
    return path


def _memory_limit(warehouse) -> str:
    """The database's memory limit, as a new connection to the warehouse sees it: a setting of
    the open database (`set global`), not of one connection, lost when the file is closed."""
    con = warehouse_file.connect(warehouse)
    try:
        return con.execute("select current_setting('memory_limit')").fetchone()[0]
    finally:
        con.close()


def test_within_a_run_the_steps_connections_share_one_open_database(warehouse):
    with warehouse_file.held_open(warehouse):
        con = warehouse_file.connect(warehouse)
        con.execute("set global memory_limit = '123MB'")
        con.execute("insert into t values (2)")
        con.close()
        assert _memory_limit(warehouse) == "117.3 MiB"  # (123,000,000 bytes: the same database)
        con = warehouse_file.connect(warehouse, read_only=True)  # (a read during the run: the same database)
        assert con.execute("select list(x order by x) from t").fetchone()[0] == [1, 2]
        con.close()
        assert warehouse_file.is_held(warehouse)
        assert not _another_process_can_write(warehouse)  # (held between the steps too)
    assert not warehouse_file.is_held(warehouse)
    assert _another_process_can_write(warehouse)  # (closed at the end of the run)
    assert _memory_limit(warehouse) != "117.3 MiB"  # (opened again: DuckDB's default)


def test_outside_a_run_each_connection_opens_the_file_again(warehouse):
    con = warehouse_file.connect(warehouse)
    con.execute("set global memory_limit = '123MB'")
    con.close()
    assert _memory_limit(warehouse) != "117.3 MiB"


def test_release_lets_another_process_write_the_file_and_the_next_connection_opens_it_again(warehouse):
    with warehouse_file.held_open(warehouse):
        con = warehouse_file.connect(warehouse)
        con.execute("insert into t values (2)")
        con.close()
        kept = warehouse_file.connect(warehouse)  # (a step's connection still open meanwhile stays usable)
        warehouse_file.release()  # (as before each dbt command)
        assert not warehouse_file.is_held(warehouse)
        assert kept.execute("select count(*) from t").fetchone()[0] == 2
        kept.close()
        subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).execute("
                        "'insert into t values (3)').close()", str(warehouse)], check=True)
        con = warehouse_file.connect(warehouse)
        assert con.execute("select list(x order by x) from t").fetchone()[0] == [1, 2, 3]
        con.close()
        assert warehouse_file.is_held(warehouse)
    assert not warehouse_file.is_held(warehouse)


def test_outside_a_run_each_connection_opens_the_file_and_a_read_only_one_cannot_write(warehouse):
    con = warehouse_file.connect(warehouse, read_only=True)
    with pytest.raises(duckdb.InvalidInputException, match="read-only"):
        con.execute("insert into t values (2)")
    con.close()
    assert not warehouse_file.is_held(warehouse)
    assert _another_process_can_write(warehouse)


def test_a_block_within_a_run_s_block_leaves_the_file_held_until_the_outer_one_ends(warehouse):
    with warehouse_file.held_open(warehouse):
        with warehouse_file.held_open(warehouse):
            warehouse_file.connect(warehouse).close()
        assert warehouse_file.is_held(warehouse)
    assert not warehouse_file.is_held(warehouse)


def test_a_dbt_command_gives_up_the_file_first(warehouse, monkeypatch):
    """`LocalDbtCliResource.cli` releases the run's open database before dagster-dbt starts dbt."""
    from dagster_dbt import DbtCliResource

    from dagster_project.defs.dbt import DBT_DIR, LocalDbtCliResource

    seen = []
    monkeypatch.setattr(DbtCliResource, "cli", lambda self, args, **kwargs: seen.append(warehouse_file.is_held(warehouse)))
    with warehouse_file.held_open(warehouse):
        warehouse_file.connect(warehouse).close()
        LocalDbtCliResource(project_dir=str(DBT_DIR), profiles_dir=str(DBT_DIR),
                            dbt_executable=str(Path(sys.executable).parent / "dbt")).cli(["build"])
    assert seen == [False]


def test_a_run_s_steps_find_the_warehouse_held_open_and_it_is_closed_after(tmp_path, monkeypatch):
    """`pipeline.run_pipeline` holds the warehouse open around its materializations (here replaced
    by one that connects as a step does and notes what it finds), with the settings' statements."""
    from dagster_project import pipeline
    from dagster_project.defs.resources import MeterhouseSettings
    from tests.conftest import REPO

    warehouse, out = tmp_path / "w.duckdb", tmp_path / "out"
    seen = []

    def materialize_all(materialize, events_dir, through):
        settings = MeterhouseSettings(catalog_dir="", events_dir="", out_dir="", warehouse_path=str(warehouse))
        with settings.connect():
            seen.append(warehouse_file.is_held(warehouse))
        con = warehouse_file.connect(warehouse, read_only=True)
        seen.append(con.execute("select current_setting('max_vacuum_tasks')").fetchone()[0])
        con.close()
        out.mkdir()
        (out / "run_summary.json").write_text("{}")

    monkeypatch.setattr(pipeline, "_materialize_all", materialize_all)
    example = REPO / "seeds" / "mistral"
    pipeline.run_pipeline(example / "catalog", example / "events", warehouse, out, dt.date(2026, 11, 14))
    assert seen == [True, 0]
    assert not warehouse_file.is_held(warehouse)
    assert _another_process_can_write(warehouse)
