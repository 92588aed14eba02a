"""Arrival-date partitions: one per landing folder `<events>/YYYY-MM-DD/`."""

import os

import dagster as dg

# The first arrival date the warehouse can hold; override for older histories.
ARRIVAL_START = os.environ.get("METERHOUSE_START_DATE", "2024-01-01")

arrival_days = dg.DailyPartitionsDefinition(start_date=ARRIVAL_START, end_offset=1)
