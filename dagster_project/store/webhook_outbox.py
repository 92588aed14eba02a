"""Schema `state`: the webhook outbox and what the usage monitoring remembers between runs.

- `state.webhook_outbox`: one row per message and endpoint (`webhook_id`, Lago's
  `X-Lago-Unique-Key`), the body posted as it was made, and its delivery: `status` (`pending`,
  `retrying`, `succeeded`, `failed`), `attempts`, `next_attempt_at`, the last attempt's time, HTTP
  status and error. A row is inserted once (a rerun finds its id and adds nothing); only its
  delivery columns change afterwards, by `meterhouse deliver-webhooks`.
- `state.webhook_attempts`: one row per delivery attempt (append-only), with the time, the HTTP
  status or the error.
- `state.alert_values`: each alert's value at its last check (Lago's `previous_value`).
- `state.wallet_depletion`: whether each wallet's ongoing balance was found at or below zero at the
  last check (Lago's `depleted_ongoing_balance` flag), so that it is announced once per depletion.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl

from dagster_project.store.tables import rows

# What the outbox asset reads in the warehouse (and the published files of `published_outputs`).
READS = [["catalog", "webhook_endpoints"], ["catalog", "alerts"], ["catalog", "subscriptions"],
         ["catalog", "billing_entities"], ["billing", "lifetime_usage"]]

_DDL = [
    "create schema if not exists state",
    """create table if not exists state.webhook_outbox (
        webhook_id varchar not null, message_id varchar not null, webhook_type varchar not null,
        object_id varchar not null, created_on date not null, endpoint_id varchar not null,
        webhook_url varchar not null, body varchar not null, outbox_order bigint not null,
        status varchar not null, attempts integer not null, next_attempt_at timestamp,
        last_attempt_at timestamp, last_http_status integer, last_error varchar)""",
    """create table if not exists state.webhook_attempts (
        webhook_id varchar not null, attempt integer not null, attempted_at timestamp not null,
        http_status integer, error varchar, status_after varchar not null)""",
    "create table if not exists state.alert_values (alert_id varchar not null, previous_value varchar not null)",
    "create table if not exists state.wallet_depletion (wallet_id varchar not null, is_depleted boolean not null)",
]


def ensure_tables(con) -> None:
    for statement in _DDL:
        con.execute(statement)


def endpoints(con) -> list[dict]:
    return rows(con, "select * from catalog.webhook_endpoints order by webhook_url")


def alerts(con) -> list[dict]:
    return rows(con, "select * from catalog.alerts order by external_subscription_id, code")


def subscriptions(con) -> dict[str, dict]:
    """external_id -> its latest subscription row (the one a plan change leaves running)."""
    found = rows(con, """select external_id, subscription_id, external_customer_id from catalog.subscriptions
                         order by external_id, subscription_at nulls first""")
    return {s["external_id"]: s for s in found}


def lifetime_usage_cents(con) -> dict[str, int]:
    """external subscription id -> its lifetime usage (`billing.lifetime_usage`, the one progressive
    billing computes). Two periods open at once (a plan change) both count the earlier periods of
    the external id; the larger total is the one with the most usage."""
    found = con.execute("""select external_subscription_id, max(total_usage_amount_cents) from billing.lifetime_usage
                           group by external_subscription_id order by external_subscription_id""").fetchall()
    return dict(found)


def billing_entity_code(con) -> str | None:
    found = con.execute("select code from catalog.billing_entities limit 1").fetchone()
    return found[0] if found else None


def previous_values(con) -> dict[str, Decimal]:
    return {a: Decimal(v) for a, v in con.execute("select alert_id, previous_value from state.alert_values").fetchall()}


def depleted_wallets(con) -> set[str]:
    return {w for (w,) in con.execute("select wallet_id from state.wallet_depletion where is_depleted").fetchall()}


# The columns of an outbox row that a check gives, in the table's order (`outbox_order` follows).
_ADDED = ("webhook_id", "message_id", "webhook_type", "object_id", "created_on", "endpoint_id", "webhook_url", "body")


def record_checks(con, outbox_rows: list[dict], alert_values: dict[str, Decimal], depleted: dict[str, bool]) -> int:
    """In one transaction: add the outbox rows whose `webhook_id` is not there yet (in the order
    given) and replace the alerts' values and the wallets' depletion flags. The rows added."""
    con.execute("begin")
    try:
        known = {w for (w,) in con.execute("select webhook_id from state.webhook_outbox").fetchall()}
        order = con.execute("select coalesce(max(outbox_order), 0) from state.webhook_outbox").fetchone()[0]
        added = [r for r in outbox_rows if r["webhook_id"] not in known]
        # Each table in one statement from a frame (DuckDB reads it by its name): a month-end adds a
        # row per invoice and endpoint, and every wallet has its flag; one `insert` a row took
        # 9.5 s for 20,000 outbox rows. (Also no `executemany`, which refuses an empty list.)
        new_rows = pl.DataFrame(  # noqa: F841
            {**{column: [r[column] for r in added] for column in _ADDED},
             "outbox_order": list(range(order + 1, order + 1 + len(added)))},
            schema={**{column: pl.String for column in _ADDED}, "created_on": pl.Date, "outbox_order": pl.Int64})
        con.execute(f"""insert into state.webhook_outbox select {", ".join(_ADDED)}, outbox_order, 'pending', 0,
                        null, null, null, null from new_rows""")
        alert_rows = pl.DataFrame(  # noqa: F841
            [(a, str(v)) for a, v in sorted(alert_values.items())], schema={"a": pl.String, "v": pl.String}, orient="row")
        wallet_flags = pl.DataFrame(  # noqa: F841
            sorted(depleted.items()), schema={"w": pl.String, "d": pl.Boolean}, orient="row")
        con.execute("delete from state.alert_values")
        con.execute("insert into state.alert_values select a, v from alert_rows")
        con.execute("delete from state.wallet_depletion")
        con.execute("insert into state.wallet_depletion select w, d from wallet_flags")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return len(added)


def due(con, now: dt.datetime) -> list[dict]:
    """The webhooks to post at `now`: pending ones, and retrying ones whose time has come, oldest
    first."""
    return rows(con, """select webhook_id, webhook_url, body, attempts from state.webhook_outbox
                        where status = 'pending' or (status = 'retrying' and next_attempt_at <= ?)
                        order by outbox_order""", [now])


def record_attempt(con, webhook_id: str, attempted_at: dt.datetime, http_status: int | None, error: str | None,
                   status: str, attempts: int, next_attempt_at: dt.datetime | None) -> None:
    """One attempt: its row in `state.webhook_attempts` and the webhook's new delivery state."""
    con.execute("begin")
    try:
        con.execute("insert into state.webhook_attempts values (?, ?, ?, ?, ?, ?)",
                    [webhook_id, attempts, attempted_at, http_status, error, status])
        con.execute("""update state.webhook_outbox set status = ?, attempts = ?, next_attempt_at = ?,
                       last_attempt_at = ?, last_http_status = ?, last_error = ? where webhook_id = ?""",
                    [status, attempts, next_attempt_at, attempted_at, http_status, error, webhook_id])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def counts(con) -> dict[str, int]:
    """Webhooks per delivery status."""
    return dict(con.execute("select status, count(*) from state.webhook_outbox group by all").fetchall())
