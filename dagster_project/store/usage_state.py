"""Schema `state`: what the incremental usage models were last built from, and what to rebuild."""

import hashlib
from pathlib import Path

# What the incremental usage models were last built from (schema `state`, written after a
# successful build): the content of each arrival day, and a fingerprint of the catalog and of the
# dbt project. A day whose content changed is rebuilt with every later day; a change of catalog,
# models or of an existing billing period rebuilds everything. And where that build kept the
# models' tables (`spark_exchange.tables_kept_by`), which a selection of them is built over.
STATE_DDL = """
create schema if not exists state;
create table if not exists state.usage_days (arrival_date date primary key, content_signature varchar not null);
create table if not exists state.usage_fingerprint (fingerprint varchar not null);
create table if not exists state.usage_tables (kept_by varchar not null);
create table if not exists state.usage_periods as select {columns} from calendar.billing_periods limit 0;
"""
# The columns of a billing period the usage models read (stg_calendar__billing_periods).
PERIOD_COLUMNS = ("billing_period_id, subscription_id, external_subscription_id, period_start_date, period_end_date, "
                  "period_start_at, period_end_at, charges_from_at, charges_to_at, invoice_finalized_on")
STATE_DDL = STATE_DDL.replace("{columns}", PERIOD_COLUMNS)
FINGERPRINT_TABLES = ("billable_metrics", "subscriptions", "charges", "charge_filters", "charge_filter_values",
                      "property_keys")
NOTHING_TO_REBUILD = "9999-12-31"


def _fingerprint(con, dbt_dir: Path, engine: str = "duckdb") -> str:
    digest = hashlib.sha256()
    if engine != "duckdb":  # (the models' tables live in that engine: a change of engine rebuilds them)
        digest.update(f"engine={engine}".encode())
    for table in FINGERPRINT_TABLES:
        digest.update(repr(con.execute(f"select * from catalog.{table} order by all").fetchall()).encode())
    folders = ("models/staging", "models/intermediate", "models/marts/usage", "macros")
    for path in sorted(p for d in folders for p in (dbt_dir / d).rglob("*") if p.is_file()):
        digest.update(path.relative_to(dbt_dir).as_posix().encode() + path.read_bytes())
    digest.update((dbt_dir / "dbt_project.yml").read_bytes())
    return digest.hexdigest()


def plan_usage_rebuild(con, dbt_dir: Path, engine: str = "duckdb") -> tuple[str, bool, str]:
    """(first arrival date to rebuild, full refresh?, fingerprint) for the incremental usage models
    of the dbt project in `dbt_dir`, built on `engine` (`duckdb`, or `spark` and where it runs)."""
    con.execute(STATE_DDL)
    built = con.execute("select fingerprint from state.usage_fingerprint").fetchone()
    fingerprint = _fingerprint(con, dbt_dir, engine)
    if built is None or built[0] != fingerprint:
        return "0001-01-01", True, fingerprint
    changed_periods = con.execute(
        f"select count(*) from (select * from state.usage_periods except select {PERIOD_COLUMNS} from calendar.billing_periods)"
    ).fetchone()[0]
    if changed_periods:  # a period the built rows refer to moved or vanished
        return "0001-01-01", True, fingerprint
    first = con.execute(
        """select min(arrival_date) from (
               (select arrival_date, content_signature from raw.day_loads
                except select arrival_date, content_signature from state.usage_days)
               union all
               (select arrival_date, content_signature from state.usage_days
                except select arrival_date, content_signature from raw.day_loads))"""
    ).fetchone()[0]
    return (first.isoformat() if first else NOTHING_TO_REBUILD), False, fingerprint


def tables_kept_by_last_build(con) -> str | None:
    """Where the last successful build of every usage model kept their tables (`record_usage_state`):
    None before one, or since a build that started them afresh began (`forget_usage_state`)."""
    con.execute(STATE_DDL)
    row = con.execute("select kept_by from state.usage_tables").fetchone()
    return row[0] if row else None


def forget_usage_state(con) -> None:
    """Before a build that starts the models' tables afresh where they are kept apart from the
    warehouse (on Spark): until it succeeds (`record_usage_state`), the next build is a full one
    too, not one that adds days to the tables of a build that did not finish, and no selection of
    the models is built over them."""
    con.execute(STATE_DDL)
    con.execute("delete from state.usage_fingerprint")
    con.execute("delete from state.usage_tables")


def record_usage_state(con, fingerprint: str, kept_by: str = "duckdb") -> None:
    """After a successful build: the models now reflect these days, this catalog and these periods
    (`fingerprint`: the one computed before the build, in case a file changed meanwhile), and their
    tables are kept by `kept_by` (`spark_exchange.tables_kept_by`)."""
    con.execute(STATE_DDL)
    con.execute("begin transaction")
    con.execute("delete from state.usage_days")
    con.execute("insert into state.usage_days select arrival_date, content_signature from raw.day_loads")
    con.execute("delete from state.usage_fingerprint")
    con.execute("insert into state.usage_fingerprint values (?)", [fingerprint])
    con.execute("delete from state.usage_tables")
    con.execute("insert into state.usage_tables values (?)", [kept_by])
    con.execute(f"create or replace table state.usage_periods as select {PERIOD_COLUMNS} from calendar.billing_periods")
    con.execute("commit")
