"""Day-by-day runs rebuild only the new arrival days, and end with the same usage marts as one run
over every day on a fresh warehouse (the incremental models the benchmark relies on)."""

import datetime as dt
import json
import re
import shutil

import duckdb

from dagster_project.generator import generate_events
from tests.conftest import REPO, run_meterhouse

START = dt.date(2026, 10, 1)
MARTS = {
    "marts.fct_usage_daily": "usage_daily_id",
    "marts.fct_usage_by_model_and_type": "usage_id",
    "marts.fct_events_rejected": "event_record_id",
    "marts.fct_event_loads": "arrival_date",
    "marts.fct_late_events": "event_record_id",
    "marts.fct_charge_events": "event_record_id, charge_id",
    "intermediate.int_events_checked_daily": "all",
    "intermediate.int_events_deduplicated": "source_file, line_number, item_index",
}


def catalog(folder):
    seeds = REPO / "seeds" / "mistral" / "catalog"
    folder.mkdir()
    for name in ("01_billable_metrics.json", "02_plans.json"):
        shutil.copy(seeds / name, folder / name)
    ids = ["00001", "00002"]
    (folder / "03_customers.json").write_text(json.dumps(
        [{"customer": {"external_id": f"cus_{i}", "name": i, "currency": "USD", "timezone": "UTC"}} for i in ids]))
    (folder / "05_subscriptions.json").write_text(json.dumps(
        [{"subscription": {"external_customer_id": f"cus_{i}", "plan_code": "mistral_pricing", "external_id": f"sub_{i}",
                           "subscription_at": "2026-09-30T00:00:00Z"}} for i in ids]))


def marts(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {t: con.execute(f"select * from {t} order by {key}").fetchall() for t, key in MARTS.items()}
    finally:
        con.close()


def _views_made(work, selection: str) -> int:
    """How many views the last dbt command of `selection` made, as dbt counted them."""
    last = (work / "warehouse.duckdb.dbt" / selection / "dbt.log").read_text().rsplit("Running with dbt=", 1)[1]
    finished = [line for line in last.splitlines() if "Finished running" in line][-1]
    found = re.search(r"(\d+) view models?", finished)
    return int(found.group(1)) if found else 0


def test_daily_runs_rebuild_the_new_days_and_equal_one_full_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DBT_LOG_LEVEL_FILE", "debug")  # dbt reports its partial parsing at level debug
    catalog(tmp_path / "catalog")
    # 3 subscriptions, one unknown to the catalog; duplicates often cross midnight into the next day
    generate_events(tmp_path / "events", subscriptions=3, days=4, start=START, events_per_day=300,
                    duplicate_share=0.05, malformed_share=0.02)
    daily, fresh = tmp_path / "daily", tmp_path / "fresh"
    daily.mkdir()
    fresh.mkdir()
    for offset in range(4):
        if offset == 3:  # (a view dropped by hand is made again, with the other views of its command)
            with duckdb.connect(str(daily / "warehouse.duckdb")) as con:
                con.execute("drop view staging.stg_catalog__charge_filters")
        run_meterhouse(tmp_path / "catalog", tmp_path / "events", daily, (START + dt.timedelta(days=offset)).isoformat())
        views_made = {selection: _views_made(daily, selection) for selection in ("usage_models", "billing_marts")}
        # The views are made by a new warehouse's first run, then not, while the project and the
        # columns of the tables they read stay as they were.
        assert views_made == {0: {"usage_models": 13, "billing_marts": 21}, 1: {"usage_models": 0, "billing_marts": 0},
                              2: {"usage_models": 0, "billing_marts": 0}, 3: {"usage_models": 13, "billing_marts": 0}}[offset]
        con = duckdb.connect(str(daily / "warehouse.duckdb"), read_only=True)
        assert con.execute("select max(arrival_date) from state.usage_days").fetchone()[0] == START + dt.timedelta(days=offset)
        con.close()
        if not offset:
            # A new warehouse: its second dbt command starts from the parse its first one made.
            billing_marts_log = (daily / "warehouse.duckdb.dbt" / "billing_marts" / "dbt.log").read_text()
            assert "Partial parsing enabled" in billing_marts_log and "Unable to do partial parsing" not in billing_marts_log
        if offset:
            day = START + dt.timedelta(days=offset)
            dbt_target = daily / "warehouse.duckdb.dbt" / "usage_models"
            # the event-level dbt tests checked the new day only ...
            test_sql = (dbt_target / "compiled" / "meterhouse" / "models" / "intermediate" / "_intermediate__models.yml"
                        / "not_null_int_events_deduplicated_first_event_record_id.sql").read_text()
            assert f"is_duplicate and arrival_date >= cast('{day}' as date)" in test_sql
            # ... and the new date made dbt re-parse nothing (its partial parsing tracks the files
            # that read an environment variable at parse time)
            last_invocation = (dbt_target / "dbt.log").read_text().rsplit("Running with dbt=", 1)[1]
            assert "Partial parsing enabled: 0 files deleted, 0 files added, 0 files changed." in last_invocation
            # ... without dbt's JSON artifacts of the run (Dagster's event log has each node's result)
            assert not {"manifest.json", "run_results.json"} & {p.name for p in dbt_target.iterdir()}
    run_meterhouse(tmp_path / "catalog", tmp_path / "events", fresh, (START + dt.timedelta(days=3)).isoformat())
    # Another new warehouse of the same name: even its first dbt command starts from a parse kept
    # by a warehouse before it (the daily one's, or another test's), not from the whole project.
    usage_models_log = (fresh / "warehouse.duckdb.dbt" / "usage_models" / "dbt.log").read_text()
    assert "Partial parsing enabled" in usage_models_log and "Unable to do partial parsing" not in usage_models_log
    incremental, full = marts(daily / "warehouse.duckdb"), marts(fresh / "warehouse.duckdb")
    assert sum(len(rows) for rows in full.values()) > 100
    duplicates = [r for r in full["intermediate.int_events_deduplicated"] if r[-2]]
    assert any(r[0] > START for r in duplicates)  # some duplicates arrived on a later day than the first copy
    for table in MARTS:
        assert incremental[table] == full[table], table


def test_a_unique_value_seen_on_a_kept_day_is_not_counted_again_on_a_new_day(tmp_path):
    """every_charge_model's sub_e counts unique users a, b, a: the second `a` moved to a file of
    the next arrival day (Oct 25). Billed day by day, the Oct 25 rebuild must find `a` among the
    values of the kept days (Oct 20): 2 on Oct 20, 0 on Oct 25, as in one run over both days."""
    scenario = REPO / "tests" / "scenarios" / "every_charge_model"
    events = tmp_path / "events"
    shutil.copytree(scenario / "events", events)
    day1 = events / "2026-10-20" / "events.jsonl"
    lines = day1.read_text().splitlines(keepends=True)
    moved = [line for line in lines if '"transaction_id": "t15"' in line]
    assert len(moved) == 1 and '"user": "a"' in moved[0]
    day1.write_text("".join(line for line in lines if line not in moved))
    (events / "2026-10-25" / "late_user.jsonl").write_text(moved[0])

    def unique_counts(work):
        con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
        try:
            return con.execute(
                "select d.arrival_date::varchar, d.units::int from marts.fct_usage_daily d"
                " where d.aggregation_type = 'unique_count_agg' order by all").fetchall()
        finally:
            con.close()

    daily, fresh = tmp_path / "daily", tmp_path / "fresh"
    daily.mkdir()
    fresh.mkdir()
    # (a warehouse from before the one pass: its event-level table goes at the first run)
    with duckdb.connect(str(daily / "warehouse.duckdb")) as con:
        con.execute("create schema intermediate; create table intermediate.int_events_matched_to_charge_filters as select 1 as x")
    run_meterhouse(scenario / "catalog", events, daily, "2026-10-20")
    assert unique_counts(daily) == [("2026-10-20", 2)]
    with duckdb.connect(str(daily / "warehouse.duckdb"), read_only=True) as con:
        assert not con.execute("select * from information_schema.tables where table_name = "
                               "'int_events_matched_to_charge_filters'").fetchall()
    run_meterhouse(scenario / "catalog", events, daily, "2026-11-02")
    compiled = (daily / "warehouse.duckdb.dbt" / "usage_models" / "compiled" / "meterhouse" / "models" / "marts"
                / "usage" / "fct_usage_daily.sql").read_text()
    # an incremental build (seen_values exists only then) of the days after Oct 20
    assert "seen_values" in compiled and "cast('2026-10-21' as date)" in compiled
    run_meterhouse(scenario / "catalog", events, fresh, "2026-11-02")
    assert unique_counts(daily) == unique_counts(fresh) == [("2026-10-20", 2), ("2026-10-25", 0)]
