"""Every connection that writes the warehouse runs with the settings the project chose: the Python
steps' (`MeterhouseSettings.connect`) and dbt's (its profile). What DuckDB then does with its row
groups is DuckDB's business, not asserted here (it depends on DuckDB's version and the machine's
load); what the project controls is that the setting reaches every connection.

`max_vacuum_tasks = 0` (DuckDB's default is 100): no merging of part-filled row groups at
checkpoints, so a new day's load does not rewrite the day before it (VACUUM_TASKS in
dagster_project/defs/resources.py says why)."""

import ast
import json
import os
import subprocess
from pathlib import Path

import duckdb

from dagster_project.defs.resources import MeterhouseSettings
from tests.conftest import REPO

DBT = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "dbt"
QUERY = ("select current_setting('max_vacuum_tasks') as vacuum_tasks, current_setting('TimeZone') as time_zone, "
         "current_setting('memory_limit') as memory_limit")


def test_the_python_steps_connect_without_vacuum_merges_in_utc_under_the_memory_cap(tmp_path):
    settings = MeterhouseSettings(catalog_dir="", events_dir="", out_dir="", warehouse_path=str(tmp_path / "w.duckdb"),
                                  duckdb_memory_limit="1GB")
    with settings.connect() as con:
        vacuum_tasks, time_zone, memory_limit = con.execute(QUERY).fetchone()
    # DuckDB shows 1GB (10^9 bytes) in binary units: 953.6 MiB
    assert (vacuum_tasks, time_zone, memory_limit) == (0, "UTC", "953.6 MiB")


def test_within_a_run_the_database_held_open_has_the_settings_whichever_connection_opens_it(tmp_path):
    """The connection holding the warehouse open for a run's steps (`store/warehouse_file.py`) runs
    the settings' statements when it opens the file, also when the first connection after a dbt
    command is a read (`pipeline._read`), which sets nothing itself: the database's own settings
    (no vacuum merges, the memory cap) are there. (The time zone is each connection's own, which
    `MeterhouseSettings.connect` sets.)"""
    from dagster_project.store import warehouse_file

    settings = MeterhouseSettings(catalog_dir="", events_dir="", out_dir="", warehouse_path=str(tmp_path / "w.duckdb"),
                                  duckdb_memory_limit="1GB")
    with warehouse_file.held_open(settings.warehouse, settings.session_settings()):
        for _ in range(2):  # (opened, closed as before a dbt command, opened again)
            con = warehouse_file.connect(settings.warehouse, read_only=True)
            vacuum_tasks, _, memory_limit = con.execute(QUERY).fetchone()
            assert (vacuum_tasks, memory_limit) == (0, "953.6 MiB")
            con.close()
            warehouse_file.release()


def test_duckdb_merges_by_default_so_the_setting_is_what_turns_it_off():
    # (the other tests would pass without the project's setting if DuckDB's default were 0)
    assert duckdb.connect().execute("select current_setting('max_vacuum_tasks')").fetchone() == (100,)


def test_dbts_profile_connects_without_vacuum_merges_in_utc_under_the_memory_cap(tmp_path):
    # dbt's own connection, from dbt_project/profiles.yml, on the warehouse the Python steps name
    environment = os.environ | {"METERHOUSE_WAREHOUSE": str(tmp_path / "w.duckdb"), "METERHOUSE_DUCKDB_MEMORY_LIMIT": "1GB"}
    result = subprocess.run(
        [str(DBT), "show", "--inline", QUERY, "--project-dir", str(REPO / "dbt_project"),
         "--profiles-dir", str(REPO / "dbt_project"), "--target-path", str(tmp_path / "target"),
         "--log-path", str(tmp_path / "logs"), "--output", "json", "--quiet"],
        capture_output=True, text=True, env=environment, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads(result.stdout)["show"] == [{"vacuum_tasks": 0, "time_zone": "UTC", "memory_limit": "953.6 MiB"}]
    assert (tmp_path / "w.duckdb").exists()  # the file METERHOUSE_WAREHOUSE named, not the default


def _read_write_connects(path: Path) -> list[int]:
    """Lines of `duckdb.connect(...)` calls in a module that are not read-only."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "duckdb"):
            read_only = any(k.arg == "read_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                            for k in node.keywords)
            if not read_only:
                lines.append(node.lineno)
    return lines


def _warehouse_file_connects(path: Path) -> list[tuple[int, bool]]:
    """(line, read_only) of each `warehouse_file.connect(...)` call in a module."""
    return [(node.lineno, any(k.arg == "read_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                              for k in node.keywords))
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "warehouse_file"]


def test_no_module_opens_the_warehouse_for_writing_but_through_the_settings():
    """Every connection that may write the warehouse carries the settings above: DuckDB is opened
    read-write only by store/warehouse_file.py (which holds the file open for a run's steps), and
    that only from MeterhouseSettings.connect and from the pipeline's reads (read-only outside a run)."""
    found = {str(p.relative_to(REPO)): lines for p in sorted((REPO / "dagster_project").rglob("*.py"))
             if (lines := _read_write_connects(p))}
    assert list(found) == ["dagster_project/store/warehouse_file.py"]
    callers = {str(p.relative_to(REPO)): calls for p in sorted((REPO / "dagster_project").rglob("*.py"))
               if (calls := _warehouse_file_connects(p))}
    assert {path: [read_only for _, read_only in calls] for path, calls in callers.items()} == {
        "dagster_project/defs/resources.py": [False],  # MeterhouseSettings.connect
        "dagster_project/pipeline.py": [True],  # pipeline._read
    }
