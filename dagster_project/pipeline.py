"""Run the Dagster definitions in-process, as `meterhouse run` and the tests do."""

from __future__ import annotations

import datetime as dt
import gc
import json
from pathlib import Path

import dagster as dg

from dagster_project.defs.resources import MeterhouseSettings
from dagster_project.ingest.events import arrival_dates
from dagster_project.warm_dbt import warm_dbt


def run_pipeline(catalog_dir: Path, events_dir: Path, warehouse: Path, out_dir: Path, through: dt.date,
                 payments_dir: Path | None = None) -> dict:
    """Load arrival days up to `through` in one run, then build, price and publish in a second.

    Both runs use the same definitions as `dagster dev`; the range is one run with a single dbt
    invocation, not one per day. dbt's commands go through one warm dbt process, started first so
    that its import of dbt overlaps the Dagster imports and the load (`warm_dbt.py`).
    """
    with warm_dbt():
        return _run(catalog_dir, events_dir, warehouse, out_dir, through, payments_dir)


def _run(catalog_dir: Path, events_dir: Path, warehouse: Path, out_dir: Path, through: dt.date,
         payments_dir: Path | None) -> dict:
    from dagster_project.definitions import build_definitions

    settings = MeterhouseSettings(
        catalog_dir=str(Path(catalog_dir).resolve()),
        events_dir=str(Path(events_dir).resolve()),
        warehouse_path=str(Path(warehouse).resolve()),
        out_dir=str(Path(out_dir).resolve()),
        payments_dir=str(Path(payments_dir).resolve()) if payments_dir else "",
        through=through.isoformat(),
    )
    defs = build_definitions(settings)
    assets = list(defs.assets)
    resources = dict(defs.resources)
    instance = dg.DagsterInstance.ephemeral()

    def materialize(selection, tags=None) -> None:
        result = dg.materialize(assets, selection=selection, resources=resources, instance=instance, tags=tags)
        if not result.success:
            raise RuntimeError(f"run failed: {selection}")

    # What exists by now (the imported modules, the definitions, the instance) lives as long as the
    # runs: kept out of Python's cyclic garbage collection meanwhile, whose full collections would
    # otherwise walk it again and again (0.3 s of a one-day run). Released to it afterwards.
    gc.freeze()
    try:
        _materialize_all(materialize, events_dir, through)
    finally:
        gc.unfreeze()
    return json.loads((Path(out_dir) / "run_summary.json").read_text())


def _materialize_all(materialize, events_dir: Path, through: dt.date) -> None:
    """Ingest, then the arrival days as one partition range, then everything downstream."""
    materialize(dg.AssetSelection.groups("ingest") - dg.AssetSelection.assets(["raw", "events"], ["catalog", "billing_periods"]))
    days = [d for d in arrival_dates(Path(events_dir)) if d <= through]
    if days:
        materialize(
            dg.AssetSelection.assets(["raw", "events"]),
            tags={
                "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": through.isoformat(),
            },
        )
    # The monthly invoice folders (`outputs/period_invoices`) are the period-end job's, per month.
    materialize(dg.AssetSelection.all() - dg.AssetSelection.groups("ingest") - dg.AssetSelection.assets(["outputs", "period_invoices"])
                | dg.AssetSelection.assets(["catalog", "billing_periods"]))
