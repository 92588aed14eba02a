"""The project's generic tests (`unique_combination` and its `row_hash`, `primary_key`,
`not_null_columns`), run by dbt on a tiny project that uses the project's macros: the duplicates and
nulls they report are those counted by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dagster_project.warm_dbt import warm_dbt

MACROS = Path(__file__).resolve().parents[1] / "dbt_project" / "macros"
DBT = str(Path(sys.executable).parent / "meterhouse-dbt")

ROWS = """
    select * from (values
        ('a', 1, 0), ('a', 1, 0), ('a', 1, 1), ('b', 1, 0),
        (null, 2, 0), (null, 2, 0), (null, 3, 0),
        ('c', 3, 1), ('c', 3, 1), ('c', 3, 1)
    ) as t(source_file, line_number, item_index)
"""


# k: 'k1' twice, null twice; a: 2 nulls, b: none, c: 1 null
KEYED = """
    select * from (values
        ('k1', 1, 1, 1), ('k1', null, 2, 2), (null, 3, 3, null), ('k2', null, 4, 4), (null, 5, 5, 5)
    ) as t(k, a, b, c)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    shutil.copytree(MACROS, root / "macros")
    (root / "models").mkdir()
    (root / "dbt_project.yml").write_text(
        "name: probe\nversion: '1.0.0'\nprofile: probe\nmacro-paths: [macros]\nmodel-paths: [models]\n"
        "models: {probe: {+materialized: table}}\n")
    (root / "profiles.yml").write_text(
        f"probe:\n  target: local\n  outputs:\n    local:\n      type: duckdb\n      path: '{root / 'probe.duckdb'}'\n")
    (root / "models" / "with_duplicates.sql").write_text(ROWS)
    (root / "models" / "without_duplicates.sql").write_text(f"select distinct * from ({ROWS})")
    # both spellings of the hash, on the same rows: the default (portable) one and DuckDB's
    (root / "models" / "hashes.sql").write_text(
        "select source_file, line_number, item_index,\n"
        "    {{ default__row_hash(['source_file', 'line_number', 'item_index']) }} as portable_hash,\n"
        "    {{ row_hash(['source_file', 'line_number', 'item_index']) }} as duckdb_hash\n"
        f"from ({ROWS})\n")  # (not a ref: dbt build skips what follows a failed test)
    (root / "models" / "keyed.sql").write_text(KEYED)
    (root / "models" / "keyed_well.sql").write_text("select * from (values ('k1', 1), ('k2', null)) as t(k, a)")
    (root / "models" / "schema.yml").write_text(
        "models:\n"
        + "".join(
            f"  - name: {name}\n    data_tests:\n      - unique_combination:\n"
            f"          arguments:\n            columns: [source_file, line_number, item_index]\n"
            for name in ("with_duplicates", "without_duplicates"))
        + "".join(
            f"  - name: {name}\n    data_tests:\n      - not_null_columns:\n"
            f"          arguments:\n            columns: [{columns}]\n"
            f"    columns:\n      - name: k\n        data_tests: [primary_key]\n"
            for name, columns in (("keyed", "k, a, b, c"), ("keyed_well", "k"))))
    with warm_dbt():
        result = subprocess.run([DBT, "build", "--project-dir", str(root), "--profiles-dir", str(root)],
                                capture_output=True, text=True, timeout=300)
    results = {r["unique_id"].split(".")[2]: r for r in json.loads((root / "target" / "run_results.json").read_text())["results"]}
    return root, result, results


def test_the_duplicates_found_are_those_counted_by_hand(built):
    _, result, results = built
    assert result.returncode == 1, result.stdout[-2000:]  # a test failed
    # ('a', 1, 0) twice, (null, 2, 0) twice (NULLs group together), ('c', 3, 1) three times
    failed = results["unique_combination_with_duplicates_source_file__line_number__item_index"]
    assert (failed["status"], failed["failures"]) == ("fail", 3)
    passed = results["unique_combination_without_duplicates_source_file__line_number__item_index"]
    assert (passed["status"], passed["failures"]) == ("pass", 0)


def test_both_hash_spellings_give_equal_hashes_exactly_for_equal_rows(built):
    root, _, results = built
    assert results["hashes"]["status"] == "success"
    con = duckdb.connect(str(root / "probe.duckdb"), read_only=True)
    rows = con.execute("select source_file, line_number, item_index, portable_hash, duckdb_hash from hashes").fetchall()
    for spelling in (3, 4):
        by_row = {}
        for row in rows:
            by_row.setdefault(row[:3], set()).add(row[spelling])
        assert all(len(hashes) == 1 for hashes in by_row.values())  # equal rows, one hash
        assert len({next(iter(h)) for h in by_row.values()}) == len(by_row) == 6  # 6 distinct rows, 6 hashes


def _failing_rows(root: Path, test: str) -> set[tuple]:
    """What the compiled test returns on the probe's tables: the rows it fails with."""
    sql = (root / "target" / "compiled" / "probe" / "models" / "schema.yml" / f"{test}.sql").read_text()
    con = duckdb.connect(str(root / "probe.duckdb"), read_only=True)
    try:
        return set(con.execute(sql).fetchall())
    finally:
        con.close()


def test_primary_key_fails_with_each_null_or_repeated_key_and_its_rows(built):
    root, _, results = built
    assert (results["primary_key_keyed_k"]["status"], results["primary_key_keyed_k"]["failures"]) == ("fail", 2)
    assert _failing_rows(root, "primary_key_keyed_k") == {("k1", 2), (None, 2)}
    assert (results["primary_key_keyed_well_k"]["status"], results["primary_key_keyed_well_k"]["failures"]) == ("pass", 0)


def test_not_null_columns_fails_with_each_column_holding_nulls_and_how_many(built):
    root, _, results = built
    test = "not_null_columns_keyed_k__a__b__c"
    assert (results[test]["status"], results[test]["failures"]) == ("fail", 3)
    assert _failing_rows(root, test) == {("k", 2), ("a", 2), ("c", 1)}
    passed = results["not_null_columns_keyed_well_k"]
    assert (passed["status"], passed["failures"]) == ("pass", 0)  # (its column a has a null: not listed)
