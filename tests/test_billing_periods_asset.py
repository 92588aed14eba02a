"""The `calendar/billing_periods` asset: a subscription without `subscription_at` starts with the
first arrival day of its well-formed events; a dated one keeps its own start."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import dagster as dg
import duckdb

from dagster_project.defs.resources import MeterhouseSettings
from tests.conftest import REPO

CATALOG = REPO / "seeds" / "mistral" / "catalog"


def event(tx: str, subscription: str, **changes) -> str:
    body = {"transaction_id": tx, "code": "mistral_tokens", "external_subscription_id": subscription,
            "timestamp": 1791331200,  # 2026-10-07T00:00:00Z
            "properties": {"tokens": 10, "model": "mistral-small", "type": "input"}}
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None})


def test_an_undated_subscription_starts_on_the_first_arrival_day_of_its_well_formed_events(tmp_path):
    from dagster_project.definitions import build_definitions

    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    subscriptions = json.loads((catalog / "05_subscriptions.json").read_text())
    for body in subscriptions:
        if body["subscription"]["external_id"] == "sub_00003":  # initech, anniversary, monthly
            del body["subscription"]["subscription_at"]
    (catalog / "05_subscriptions.json").write_text(json.dumps(subscriptions))
    events = tmp_path / "events"
    for day, lines in {
        # a line of sub_00003 rejected at load (no code) arrives first: it does not start it
        "2026-10-05": [event("bad", "sub_00003", code=None), event("a1", "sub_00001")],
        "2026-10-07": [event("i1", "sub_00003")],
        "2026-10-09": [event("i2", "sub_00003")],
    }.items():
        (events / day).mkdir(parents=True)
        (events / day / "a.jsonl").write_text("\n".join(lines) + "\n")

    settings = MeterhouseSettings(catalog_dir=str(catalog), events_dir=str(events),
                                  warehouse_path=str(tmp_path / "w.duckdb"), out_dir=str(tmp_path / "out"),
                                  through="2026-10-09")
    defs = build_definitions(settings)
    assets, resources, instance = list(defs.assets), dict(defs.resources), dg.DagsterInstance.ephemeral()
    periods_key = dg.AssetKey(["calendar", "billing_periods"])
    for selection, tags in [
        (dg.AssetSelection.groups("ingest") - dg.AssetSelection.assets(["raw", "events"], periods_key), None),
        (dg.AssetSelection.assets(["raw", "events"]),
         {"dagster/asset_partition_range_start": "2026-10-05", "dagster/asset_partition_range_end": "2026-10-09"}),
        (dg.AssetSelection.assets(periods_key), None),
    ]:
        assert dg.materialize(assets, selection=selection, resources=resources, instance=instance, tags=tags).success

    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    first = dict(con.execute(
        "select external_subscription_id, min(period_start_date) from calendar.billing_periods group by 1").fetchall())
    # sub_00003 bills on its anniversary: its first well-formed event arrived on Oct 7, so its first
    # period starts then (not Oct 5, the day of its line rejected at load); sub_00001 (acme, New
    # York) keeps its subscription_at, 2026-10-01T04:00:00Z, midnight in New York
    assert first["sub_00003"] == dt.date(2026, 10, 7)
    assert first["sub_00001"] == dt.date(2026, 10, 1)
