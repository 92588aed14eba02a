"""`calendar.billing_periods`: what the periods are computed from (subscriptions, grace days, the
first arrival day of undated subscriptions, the latest arrival day), and the table itself."""

import datetime as dt

import polars as pl

from dagster_project.store.tables import table_exists, write_table

PERIOD_SCHEMA = {
    "billing_period_id": pl.String, "subscription_id": pl.String, "external_subscription_id": pl.String,
    "period_start_date": pl.Date, "period_end_date": pl.Date, "period_start_at": pl.Datetime("us"),
    "period_end_at": pl.Datetime("us"), "charges_from_at": pl.Datetime("us"), "charges_to_at": pl.Datetime("us"),
    "days_in_period": pl.Int64, "billed_days": pl.Int64, "fee_days": pl.Int64, "billing_day": pl.Date,
    "invoice_finalized_on": pl.Date, "period_index": pl.Int64,
}


# Each billing period with its subscription and plan: the one join of the three, which pricing, the
# publisher and the plan simulation read (each keeping the columns it uses).
PERIODS_WITH_PLANS = """
select p.*, s.customer_id, s.external_customer_id, s.currency, s.plan_id, s.plan_code, s.is_plan_pay_in_advance,
       pl.name as plan_name, pl.interval as plan_interval, pl.amount_cents as amount_cents_plan,
       pl.minimum_commitment_cents
from calendar.billing_periods p
join catalog.subscriptions s using (subscription_id)
join catalog.plans pl on pl.plan_id = s.plan_id
"""
PERIODS_WITH_PLANS_READS = [["calendar", "billing_periods"], ["catalog", "subscriptions"], ["catalog", "plans"]]


def periods_with_plans(con) -> pl.DataFrame:
    return con.execute(PERIODS_WITH_PLANS).pl()


def subscriptions(con) -> pl.DataFrame:
    return con.execute("select * from catalog.subscriptions").pl()


def grace_days(con) -> dict[str, int]:
    """Each customer's invoice grace period, in days."""
    return dict(con.execute("select customer_id, invoice_grace_period_days from catalog.customers").fetchall())


def first_arrivals(con, external_subscription_ids: list[str]) -> dict[str, dt.datetime]:
    """The first arrival day (as a timestamp) of the well-formed events of these subscriptions.
    Asked for the subscriptions without a start only: with every start set, nothing scans the events."""
    if not external_subscription_ids:
        return {}
    return dict(con.execute(
        """select external_subscription_id, min(arrival_date)::timestamp from raw.events
           where load_error is null and list_contains(?::varchar[], external_subscription_id)
           group by 1""",
        [external_subscription_ids],
    ).fetchall())


def latest_arrival(con) -> dt.date | None:
    return con.execute("select max(arrival_date) from raw.events").fetchone()[0]


def derived_from(con) -> tuple[str, dt.date] | None:
    """The `derivation_digest` and horizon `calendar.billing_periods` was last derived from
    (`state.billing_period_derivation`), if it still exists."""
    if not table_exists(con, "calendar", "billing_periods") or not table_exists(con, "state", "billing_period_derivation"):
        return None
    return con.execute("select inputs_sha256, horizon from state.billing_period_derivation").fetchone()


def last_period_ends(con) -> dict[str, dt.date]:
    """Each subscription's last stored `period_end_date`."""
    return dict(con.execute("select subscription_id, max(period_end_date) from calendar.billing_periods group by 1").fetchall())


def write_billing_periods(con, rows: list[dict], digest: str, horizon: dt.date, only: set[str] | None = None) -> None:
    """Replace `calendar.billing_periods` with `rows` (`only`: the rows of those subscriptions
    alone, the others' kept) and record what they were derived from, in one transaction. (Derived
    data: not in schema `catalog`, where a warehouse built before kept it; that copy is dropped.)"""
    frame = pl.DataFrame(rows, schema=PERIOD_SCHEMA)
    con.execute("begin")
    try:
        if only is None:
            write_table(con, "calendar", "billing_periods", frame)
        else:
            con.register("_periods", frame.to_arrow())
            con.register("_derived", pl.DataFrame({"subscription_id": sorted(only)}, schema={"subscription_id": pl.String}).to_arrow())
            con.execute("delete from calendar.billing_periods where subscription_id in (select subscription_id from _derived)")
            con.execute("insert into calendar.billing_periods by name select * from _periods")
            con.unregister("_periods")
            con.unregister("_derived")
        con.execute("create schema if not exists state")
        con.execute("create or replace table state.billing_period_derivation as select ?::varchar as inputs_sha256, ?::date as horizon",
                    [digest, horizon])
        con.execute("drop table if exists catalog.billing_periods")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
