"""Some of the usage models materialized alone, as an operator selects them in Dagster's UI: each
is built whole, over the warehouse's tables of the others, and the next `meterhouse run` bills as
if the selection had never been made. On `--engine spark` a selection is built over Spark's tables
of the others (tests/e2e/test_spark_engine.py), and refused, with the reason and before anything
is written, where Spark holds none that the warehouse's last build of every model left there.

tests/scenarios/eu_vat: a run through 2026-11-03, the selection, then a run through 2026-11-05,
against one run through 2026-11-05."""

import shutil

import duckdb
import pytest

from tests.conftest import REPO, materialize_usage_models, run_meterhouse, snapshot

SCENARIO = REPO / "tests" / "scenarios" / "eu_vat"
CATALOG = SCENARIO / "catalog"
SELECTION = ["intermediate/int_usage_by_model_and_type_daily", "marts/fct_usage_daily"]
TABLES = ("intermediate.int_usage_by_model_and_type_daily", "marts.fct_usage_daily")


def _rows(work, tables=TABLES):
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        return {table: con.execute(f"select * from {table} order by all").fetchall() for table in tables}


UNSELECTED = "intermediate.int_events_deduplicated"  # (neither read nor built by the selection)


def _tamper(work):
    """Rows taken out of the selected tables and of an unselected one, as evidence of which are
    built again: the unselected table's rows, to put back."""
    with duckdb.connect(str(work / "warehouse.duckdb")) as con:
        kept = con.execute(f"select * from {UNSELECTED}").fetchall()
        for table in (*TABLES, UNSELECTED):
            con.execute(f"delete from {table}")
    return kept


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    """The work folder billed through 2026-11-03, its selected tables' rows before the selection,
    the selection's outcome, the rows after, and the unselected table's rows after (then put back)."""
    work = tmp_path_factory.mktemp("selection")
    shutil.copytree(SCENARIO / "events", work / "events")
    run_meterhouse(CATALOG, work / "events", work, "2026-11-03")
    before = _rows(work)
    kept = _tamper(work)
    outcome = materialize_usage_models(CATALOG, work, "2026-11-03", SELECTION)
    after, unselected = _rows(work), _rows(work, (UNSELECTED,))[UNSELECTED]
    with duckdb.connect(str(work / "warehouse.duckdb")) as con:
        con.executemany(f"insert into {UNSELECTED} values ({', '.join('?' for _ in kept[0])})", kept)
    return work, before, outcome, after, unselected, kept


def test_the_selected_models_are_built_again_whole(selected):
    """Their rows were taken out before: the build puts every one back."""
    work, before, (success, errors), after, unselected, kept = selected
    assert (success, errors) == (True, [])
    assert [len(before[t]) > 0 for t in TABLES] == [True, True]
    assert after == before


def test_the_models_left_out_of_the_selection_are_not_built(selected):
    """Its rows were taken out too: they stay out."""
    work, before, outcome, after, unselected, kept = selected
    assert len(kept) > 0
    assert unselected == []


def test_the_next_run_bills_the_same_bytes_as_one_run_that_never_saw_the_selection(selected, tmp_path):
    work = selected[0]
    run_meterhouse(CATALOG, work / "events", work, "2026-11-05")
    once = tmp_path / "once"
    shutil.copytree(SCENARIO / "events", once / "events")
    run_meterhouse(CATALOG, once / "events", once, "2026-11-05")
    assert _rows(work, (*TABLES, UNSELECTED)) == _rows(once, (*TABLES, UNSELECTED))
    mine, theirs = snapshot(work / "out"), snapshot(once / "out")
    assert sorted(mine) == sorted(theirs)
    assert [name for name in mine if mine[name] != theirs[name]] == []


def test_on_spark_a_selection_without_spark_s_tables_of_the_others_is_refused_before_anything_is_written(tmp_path):
    """The warehouse was billed on DuckDB: Spark holds none of its tables. No Spark is needed to
    refuse (the check comes first), so this runs where Spark cannot."""
    work = tmp_path
    shutil.copytree(SCENARIO / "events", work / "events")
    run_meterhouse(CATALOG, work / "events", work, "2026-11-03")
    before = _rows(work)
    success, errors = materialize_usage_models(CATALOG, work, "2026-11-03", SELECTION, engine="spark")
    spark_dir = work.resolve() / "warehouse.duckdb.spark"
    assert not success
    assert [e for e in errors if "a selection of them is built over Spark's tables of the others, and "
            f"{spark_dir}/tables holds none that this warehouse's last build of every usage model left there" in e] != []
    assert not spark_dir.exists()
    assert _rows(work) == before
