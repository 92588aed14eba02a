"""Partitions: arrival days (one per landing folder `<events>/YYYY-MM-DD/`) and billing months."""

import os

import dagster as dg

# The first arrival date the warehouse can hold; override for older histories.
ARRIVAL_START = os.environ.get("METERHOUSE_START_DATE", "2024-01-01")

arrival_days = dg.DailyPartitionsDefinition(start_date=ARRIVAL_START, end_offset=1)

# Billing months: the invoices of the billing periods that start in a month (credit invoices: the
# month they are issued in), published together as `out/periods/YYYY-MM/`.
billing_months = dg.MonthlyPartitionsDefinition(start_date=ARRIVAL_START[:8] + "01", end_offset=1)
