"""A new warehouse's dbt commands on Spark start from the partial parse the last Spark command of
this checkout kept (`defs/dbt.py`: `spark_target_path`, `keep_parse`), not from the project's
parse for DuckDB, which dbt-spark throws away. Without dbt: the files only."""

from pathlib import Path

import pytest

from dagster_project.defs import dbt as dbt_defs
from dagster_project.defs.resources import MeterhouseSettings


@pytest.fixture
def kept(tmp_path, monkeypatch):
    folder = tmp_path / "kept"
    monkeypatch.setattr(dbt_defs, "KEPT_PARSES", folder)
    return folder


def _settings(warehouse: Path) -> MeterhouseSettings:
    return MeterhouseSettings(catalog_dir="c", events_dir="e", warehouse_path=str(warehouse), out_dir="o")


def test_a_new_warehouse_s_spark_command_starts_from_the_parse_kept_for_its_target(tmp_path, kept):
    first = dbt_defs.spark_target_path("landing_spark", _settings(tmp_path / "a" / "w.duckdb"), "spark")
    assert not (first / "partial_parse.msgpack").exists()  # nothing kept yet: dbt parses in full
    (first / "partial_parse.msgpack").parent.mkdir(parents=True)
    (first / "partial_parse.msgpack").write_bytes(b"parsed for spark")
    dbt_defs.keep_parse(first, "spark")

    second = dbt_defs.spark_target_path("usage_models_spark", _settings(tmp_path / "b" / "w.duckdb"), "spark")
    assert second == tmp_path / "b" / "w.duckdb.dbt" / "usage_models_spark"
    assert (second / "partial_parse.msgpack").read_bytes() == b"parsed for spark"
    # another target (Spark Connect) has its own parse: none kept yet
    other = dbt_defs.spark_target_path("landing_spark", _settings(tmp_path / "c" / "w.duckdb"), "spark_connect")
    assert not (other / "partial_parse.msgpack").exists()
    assert sorted(p.name for p in kept.iterdir()) == ["spark.msgpack"]  # (no file half written left)


def test_a_warehouse_s_own_parse_is_kept_in_its_folder_and_becomes_the_latest(tmp_path, kept):
    kept.mkdir()
    (kept / "spark.msgpack").write_bytes(b"older")
    own = tmp_path / "w.duckdb.dbt" / "landing_spark"
    own.mkdir(parents=True)
    (own / "partial_parse.msgpack").write_bytes(b"this warehouse's")
    assert dbt_defs.spark_target_path("landing_spark", _settings(tmp_path / "w.duckdb"), "spark") == own
    assert (own / "partial_parse.msgpack").read_bytes() == b"this warehouse's"
    dbt_defs.keep_parse(own, "spark")
    assert (kept / "spark.msgpack").read_bytes() == b"this warehouse's"


def test_a_command_that_wrote_no_parse_keeps_nothing(tmp_path, kept):
    dbt_defs.keep_parse(tmp_path / "empty", "spark")
    assert not kept.exists()
