"""A new warehouse's second dbt command on DuckDB starts from the partial parse its first one made
(`defs/dbt.py`: `target_path`), not from the project's own parse, which was made for another
warehouse path and which dbt throws away ("profile has changed"). Without dbt: the files only."""

from pathlib import Path

import pytest

from dagster_project.defs import dbt as dbt_defs
from dagster_project.defs.resources import MeterhouseSettings


def _settings(warehouse: Path) -> MeterhouseSettings:
    return MeterhouseSettings(catalog_dir="c", events_dir="e", warehouse_path=str(warehouse), out_dir="o")


@pytest.fixture(autouse=True)
def kept(tmp_path, monkeypatch):
    """The checkout's kept parses, here an empty folder of the test's own."""
    folder = tmp_path / "kept"
    monkeypatch.setattr(dbt_defs, "KEPT_PARSES", folder)
    return folder


def test_a_new_selection_folder_starts_from_the_parse_the_warehouse_s_other_selection_made(tmp_path):
    settings = _settings(tmp_path / "w.duckdb")
    first = dbt_defs.target_path("usage_models", settings)
    assert first == tmp_path / "w.duckdb.dbt" / "usage_models"
    assert not first.exists()  # nothing parsed for this warehouse yet: dagster-dbt gives the project's
    first.mkdir(parents=True)
    (first / "partial_parse.msgpack").write_bytes(b"parsed for w.duckdb")

    second = dbt_defs.target_path("billing_marts", settings)
    assert (second / "partial_parse.msgpack").read_bytes() == b"parsed for w.duckdb"
    assert sorted(p.name for p in second.iterdir()) == ["partial_parse.msgpack"]  # (no half-written copy left)


def test_a_folder_keeps_its_own_parse_and_another_warehouse_s_is_never_taken(tmp_path):
    settings = _settings(tmp_path / "w.duckdb")
    for selection, content in (("usage_models", b"usage models' own"), ("billing_marts", b"billing marts' own")):
        folder = tmp_path / "w.duckdb.dbt" / selection
        folder.mkdir(parents=True)
        (folder / "partial_parse.msgpack").write_bytes(content)
    assert (dbt_defs.target_path("billing_marts", settings) / "partial_parse.msgpack").read_bytes() == b"billing marts' own"
    # another warehouse beside it (another path: another profile) starts from nothing of these
    other = dbt_defs.target_path("billing_marts", _settings(tmp_path / "v.duckdb"))
    assert not other.exists()


def test_a_spark_selection_never_takes_a_duckdb_parse(tmp_path):
    settings = _settings(tmp_path / "w.duckdb")
    duckdb_folder = dbt_defs.target_path("usage_models", settings)
    duckdb_folder.mkdir(parents=True)
    (duckdb_folder / "partial_parse.msgpack").write_bytes(b"parsed for DuckDB")
    spark_folder = dbt_defs.spark_target_path("usage_models_spark", settings, "spark")
    assert not (spark_folder / "partial_parse.msgpack").exists()


def test_a_new_warehouse_starts_from_the_parse_kept_for_a_warehouse_of_its_name(tmp_path):
    earlier = _settings(tmp_path / "a" / "warehouse.duckdb")
    assert dbt_defs.duckdb_parse_key(earlier) == "duckdb-warehouse"
    folder = dbt_defs.target_path("billing_marts", earlier)
    folder.mkdir(parents=True)
    (folder / "partial_parse.msgpack").write_bytes(b"parsed for a/warehouse.duckdb")
    dbt_defs.keep_parse(folder, dbt_defs.duckdb_parse_key(earlier))

    new = dbt_defs.target_path("usage_models", _settings(tmp_path / "b" / "warehouse.duckdb"))
    assert (new / "partial_parse.msgpack").read_bytes() == b"parsed for a/warehouse.duckdb"
    # a warehouse of another name (another database in dbt's keys) takes none
    assert not dbt_defs.target_path("usage_models", _settings(tmp_path / "c" / "meterhouse.duckdb")).exists()
