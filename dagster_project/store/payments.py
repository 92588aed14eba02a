"""`raw.payments` and `raw.payments_rejected`: the payments folder, rewritten whole at every run."""

import polars as pl

from dagster_project.billing.invoicing import PAYMENT_SCHEMA
from dagster_project.store.tables import write_table

REJECTED_SCHEMA = {"source_file": pl.String, "line_number": pl.Int64, "reason": pl.String, "raw_line": pl.String}


def write_payments(con, payments: list[dict], rejected: list[dict]) -> None:
    con.execute("create schema if not exists raw")
    write_table(con, "raw", "payments", pl.DataFrame(payments, schema=PAYMENT_SCHEMA))
    write_table(con, "raw", "payments_rejected", pl.DataFrame(rejected, schema=REJECTED_SCHEMA))
