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


def _derive_periods(tmp_path, catalog, through: str) -> dict:
    """Materialize the catalog and `calendar/billing_periods` through `through` on the warehouse of
    `tmp_path` (no event has arrived: the horizon is `through` plus three days); the asset's
    metadata."""
    from dagster_project.definitions import build_definitions

    (tmp_path / "events").mkdir(exist_ok=True)
    settings = MeterhouseSettings(catalog_dir=str(catalog), events_dir=str(tmp_path / "events"),
                                  warehouse_path=str(tmp_path / "w.duckdb"), out_dir=str(tmp_path / "out"), through=through)
    defs = build_definitions(settings)
    assets, resources, instance = list(defs.assets), dict(defs.resources), dg.DagsterInstance.ephemeral()
    catalog_and_periods = dg.AssetSelection.groups("ingest", "calendar") - dg.AssetSelection.assets(["raw", "events"])
    result = dg.materialize(assets, selection=catalog_and_periods, resources=resources, instance=instance)
    (materialization,) = result.asset_materializations_for_node("calendar__billing_periods")
    return {key: value.value for key, value in materialization.metadata.items()}


def _period_starts(tmp_path) -> dict[str, list[dt.date]]:
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        found = con.execute("select external_subscription_id, list(period_start_date order by period_start_date) "
                            "from calendar.billing_periods group by 1").fetchall()
    return dict(found)


def test_periods_are_derived_again_only_for_subscriptions_whose_next_period_starts_or_whose_catalog_changed(tmp_path):
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    # a first run derives every subscription: acme (New York, calendar), globex (Paris, calendar),
    # initech (UTC, anniversary of Sep 15)
    assert _derive_periods(tmp_path, catalog, "2026-10-05")["subscriptions_derived"] == 3
    first = {"sub_00001": [dt.date(2026, 10, 1)], "sub_00002": [dt.date(2026, 10, 1)],
             "sub_00003": [dt.date(2026, 9, 15)]}
    assert _period_starts(tmp_path) == first

    # the next day (horizon Oct 9): every subscription's last period ends after it, nothing derived
    meta = _derive_periods(tmp_path, catalog, "2026-10-06")
    assert (meta["subscriptions_derived"], meta["periods_derived"]) == (0, 0)
    assert _period_starts(tmp_path) == first

    # through Oct 13 (horizon Oct 16): initech's period of Sep 15 ended on Oct 15, so initech alone
    # is derived again (two periods); acme's and globex's October periods end on Nov 1
    meta = _derive_periods(tmp_path, catalog, "2026-10-13")
    assert (meta["subscriptions_derived"], meta["periods_derived"]) == (1, 2)
    assert _period_starts(tmp_path) == {**first, "sub_00003": [dt.date(2026, 9, 15), dt.date(2026, 10, 15)]}

    # a changed catalog (globex's grace period) derives every subscription again, with the new
    # finalization day of globex's period (Nov 1 plus 3 days)
    customers = json.loads((catalog / "03_customers.json").read_text())
    customers[1]["customer"]["billing_configuration"] = {"invoice_grace_period": 3}
    (catalog / "03_customers.json").write_text(json.dumps(customers))
    assert _derive_periods(tmp_path, catalog, "2026-10-13")["subscriptions_derived"] == 3
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        finalized = dict(con.execute("select external_subscription_id, max(invoice_finalized_on) "
                                     "from calendar.billing_periods group by 1").fetchall())
    assert finalized == {"sub_00001": dt.date(2026, 11, 1), "sub_00002": dt.date(2026, 11, 4),
                         "sub_00003": dt.date(2026, 11, 15)}
