"""When a dbt command of a run may be left out: its inputs are those of its last successful build
and its relations are all there (`store/dbt_builds.py`)."""

import duckdb
import pytest

from dagster_project.store.dbt_builds import inputs_digest, record_build, up_to_date, views_digest


@pytest.fixture
def project(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "fct_a.sql").write_text("select * from catalog.plans\n")
    (tmp_path / "dbt_project.yml").write_text("name: x\n")
    return tmp_path


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema catalog; create schema billing; create schema marts")
    con.execute("create table catalog.plans (code varchar, amount_cents bigint)")
    con.execute("insert into catalog.plans values ('starter', 1000), ('pro', 5000)")
    con.execute("create table billing.fees (amount_cents bigint)")
    con.execute("create view marts.fct_a as select * from catalog.plans")
    return con


def digest(con, project, upstream=()):
    return inputs_digest(con, project, ("models",), ("catalog.*",), upstream)


def test_the_digest_follows_the_rows_of_the_tables_read_and_nothing_else(con, project):
    before = digest(con, project)
    con.execute("insert into billing.fees values (7)")  # a schema the selection does not read
    assert digest(con, project) == before
    con.execute("update catalog.plans set amount_cents = 1001 where code = 'starter'")
    assert digest(con, project) != before
    con.execute("update catalog.plans set amount_cents = 1000 where code = 'starter'")
    assert digest(con, project) == before  # the same rows again: the same inputs


def test_the_digest_does_not_depend_on_row_order_but_counts_repeated_rows(con, project):
    before = digest(con, project)
    con.execute("create or replace table catalog.plans as select * from catalog.plans order by code desc")
    assert digest(con, project) == before
    # a row twice more: an XOR of row hashes would cancel the pair out, a sum with the count does not
    con.execute("insert into catalog.plans values ('pro', 5000), ('pro', 5000)")
    assert digest(con, project) != before


def test_the_digest_follows_a_new_table_a_new_column_and_the_project_files(con, project):
    before = digest(con, project)
    con.execute("create table catalog.customers (id varchar)")  # `catalog.*`: every table of the schema
    with_table = digest(con, project)
    assert with_table != before
    con.execute("alter table catalog.customers add column name varchar")  # no row, a new column
    with_column = digest(con, project)
    assert with_column != with_table
    (project / "models" / "fct_a.sql").write_text("select code from catalog.plans\n")
    assert digest(con, project) != with_column


def test_a_selection_reading_another_is_stale_once_that_one_is_built_from_other_inputs(con, project):
    record_build(con, "usage_models", "u1")
    before = digest(con, project, upstream=("usage_models",))
    record_build(con, "usage_models", "u2")
    assert digest(con, project, upstream=("usage_models",)) != before
    record_build(con, "usage_models", None)  # a build under way or failed: forgotten
    assert digest(con, project, upstream=("usage_models",)) != before


def test_a_selection_is_up_to_date_only_after_a_build_from_the_same_inputs_with_its_relations_there(con, project):
    relations = [("marts", "fct_a")]
    now = digest(con, project)
    assert not up_to_date(con, "billing_marts", now, relations)  # never built
    record_build(con, "billing_marts", now)
    assert up_to_date(con, "billing_marts", now, relations)
    assert not up_to_date(con, "billing_marts", "other inputs", relations)
    con.execute("drop view marts.fct_a")  # dropped by hand: built again, not taken as there
    assert not up_to_date(con, "billing_marts", now, relations)
    record_build(con, "billing_marts", None)
    con.execute("create view marts.fct_a as select 1")
    assert not up_to_date(con, "billing_marts", now, relations)


def test_the_catalog_digest_changes_with_any_catalog_file_and_with_nothing_else(tmp_path):
    from dagster_project.store.catalog_tables import catalog_digest

    (tmp_path / "a.json").write_text('{"customer": {"external_id": "acme"}}')
    (tmp_path / "notes.txt").write_text("not read by read_catalog")
    first = catalog_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("edited")
    assert catalog_digest(tmp_path) == first
    (tmp_path / "a.json").write_text('{"customer": {"external_id": "acme2"}}')
    edited = catalog_digest(tmp_path)
    (tmp_path / "b.json").write_text("[]")
    added = catalog_digest(tmp_path)
    (tmp_path / "b.json").rename(tmp_path / "c.json")
    assert len({first, edited, added, catalog_digest(tmp_path)}) == 4


def test_views_are_made_again_only_when_the_project_or_a_table_they_read_or_the_database_change(tmp_path):
    """`views_digest`: what a selection's views were made from. New rows, a table rebuilt with the
    same columns, or a table they do not read, leave it as it was; another project, a column's
    type, a table they read appearing, or another database name (which the views' references spell
    out) change it."""
    read = [("catalog", "plans"), ("catalog", "taxes")]
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create schema catalog; create table catalog.plans (code varchar, amount_cents bigint)")
    made = views_digest(con, "project-1", read)
    con.execute("insert into catalog.plans values ('starter', 1000)")
    con.execute("create or replace table catalog.plans (code varchar, amount_cents bigint)")
    con.execute("create table catalog.unread (x int)")
    con.execute("create view catalog.v as select 1 as one")
    assert views_digest(con, "project-1", read) == made
    assert views_digest(con, "project-2", read) != made
    con.execute("create or replace table catalog.plans (code varchar, amount_cents decimal(38, 0))")
    retyped = views_digest(con, "project-1", read)
    assert retyped != made
    con.execute("create table catalog.taxes (code varchar)")
    assert views_digest(con, "project-1", read) != retyped
    con.close()
    renamed = duckdb.connect(str(tmp_path / "renamed.duckdb"))
    renamed.execute("create schema catalog; create table catalog.plans (code varchar, amount_cents decimal(38, 0))")
    renamed.execute("create table catalog.taxes (code varchar)")
    on_other_name = views_digest(renamed, "project-1", read)
    renamed.close()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as same_name:
        assert views_digest(same_name, "project-1", read) != on_other_name  # (the same tables, another database name)
