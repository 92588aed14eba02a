"""Schedules, the landing-folder sensor and the daily job, with Dagster's own test contexts."""

import datetime as dt
import gc
import shutil

import dagster as dg

from dagster_project.defs.jobs import (
    billing_run_config,
    daily_billing_schedule,
    landing_folder_sensor,
    period_end_schedule,
)
from dagster_project.defs.resources import MeterhouseSettings
from tests.conftest import REPO

SCENARIO = REPO / "tests" / "scenarios" / "new_york_month_end"


def settings_for(tmp_path, events_dir) -> MeterhouseSettings:
    return MeterhouseSettings(
        catalog_dir=str(SCENARIO / "catalog"), events_dir=str(events_dir),
        warehouse_path=str(tmp_path / "warehouse.duckdb"), out_dir=str(tmp_path / "out"),
    )


def test_the_daily_schedule_bills_yesterday_as_of_yesterday():
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 2, 0, 30, tzinfo=dt.timezone.utc))
    request = daily_billing_schedule(context)
    assert request.partition_key == "2026-11-01"
    assert request.run_config == billing_run_config("2026-11-01")


def test_the_period_end_schedule_publishes_last_month_billed_once_its_last_folder_is_complete():
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 3, 2, 0, tzinfo=dt.timezone.utc))
    request = period_end_schedule(context)
    assert request.partition_key == "2026-10-01"
    assert request.run_config == billing_run_config("2026-11-02")
    january = period_end_schedule(dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2027, 1, 3, 2, 0, tzinfo=dt.timezone.utc)))
    assert january.partition_key == "2026-12-01"


def test_the_period_end_job_publishes_one_billing_month(tmp_path):
    """The New York scenario billed through Nov 2: the October partition holds October's
    subscription invoice and the credit invoices issued in October, as JSON, HTML and PDF."""
    import json

    from dagster_project.definitions import build_definitions
    from dagster_project.pipeline import run_pipeline

    run_pipeline(SCENARIO / "catalog", SCENARIO / "events", tmp_path / "warehouse.duckdb", tmp_path / "out",
                 dt.date(2026, 11, 2))
    # the run keeps what it built out of garbage collection while it runs, and gives it back
    assert gc.get_freeze_count() == 0
    defs = build_definitions(settings_for(tmp_path, SCENARIO / "events"))
    result = defs.resolve_job_def("period_end_job").execute_in_process(
        partition_key="2026-10-01", run_config=billing_run_config("2026-11-02"), instance=dg.DagsterInstance.ephemeral())
    assert result.success
    folder = tmp_path / "out" / "periods" / "2026-10"
    manifest = json.loads((folder / "manifest.json").read_text())
    # Credits bought on Oct 1, 10 and 31 ($5, $10, $10); October's $10.00 invoice paid by credits.
    assert [(i["number"], i["invoice_type"], i["total_amount_cents"]) for i in manifest["invoices"]] == [
        ("MTH-001-001", "credit", 500), ("MTH-001-002", "credit", 1000), ("MTH-001-003", "credit", 1000),
        ("MTH-001-004", "subscription", 0),
    ]
    assert manifest["drafts"] == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json"] + [f"MTH-001-00{n}.{ext}" for n in range(1, 5) for ext in ("json", "html", "pdf")])
    assert (folder / "MTH-001-004.json").read_bytes() == (tmp_path / "out" / "invoices" / "MTH-001-004.json").read_bytes()
    assert not (tmp_path / "out" / "periods" / "2026-11").exists()


def test_the_sensor_asks_for_each_new_or_changed_day_once(tmp_path):
    events = tmp_path / "events"
    shutil.copytree(SCENARIO / "events", events)
    settings = settings_for(tmp_path, events)

    first = landing_folder_sensor(dg.build_sensor_context(resources={"settings": settings}))
    assert [r.partition_key for r in first.run_requests] == ["2026-10-10", "2026-10-31", "2026-11-02"]

    again = landing_folder_sensor(dg.build_sensor_context(resources={"settings": settings}, cursor=first.cursor))
    assert again.run_requests == []

    (events / "2026-11-02" / "more.jsonl").write_text('{"transaction_id": "x"}\n')
    changed = landing_folder_sensor(dg.build_sensor_context(resources={"settings": settings}, cursor=again.cursor))
    assert [r.partition_key for r in changed.run_requests] == ["2026-11-02"]
    assert changed.run_requests[0].run_config == billing_run_config("2026-11-02")


def test_the_daily_job_loads_a_day_and_bills_as_of_it(tmp_path):
    from dagster_project.definitions import build_definitions

    settings = settings_for(tmp_path, SCENARIO / "events")
    defs = build_definitions(settings)
    job = defs.resolve_job_def("daily_billing_job")
    result = job.execute_in_process(
        partition_key="2026-10-10", run_config=billing_run_config("2026-10-10"), instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    checks = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == "every_event_is_accounted_for"]
    assert checks and all(c.passed for c in checks)
    usage = (tmp_path / "out" / "current_usage" / "sub_ny.json").read_text()
    assert '"amount_cents": 900' in usage  # Oct 10: small input $2 + small output $3 + large input $4


def test_the_money_checks_fail_on_a_warehouse_whose_figures_do_not_add_up(tmp_path):
    import duckdb

    from dagster_project.defs.checks import credit_note_arithmetic, every_event_is_accounted_for, invoice_arithmetic

    settings = settings_for(tmp_path, tmp_path)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create schema billing; create schema marts")
    # stored totals that agree with their parts: 10.00 + 0 taxes = 10.00; credits 6.00 + 5.00 = 11.00;
    # 10.00 - 11.00 = -1.00 due
    con.execute("""create table billing.invoices as select 'i1' as invoice_id, 'MTH-001-001' as number,
                   'subscription' as invoice_type, 1000 as fees_amount_cents, 0 as taxes_amount_cents,
                   0 as credit_notes_amount_cents, 0 as coupons_amount_cents, 0 as progressive_billing_credit_amount_cents,
                   600 as prepaid_granted_credit_amount_cents, 500 as prepaid_purchased_credit_amount_cents,
                   1000 as sub_total_excluding_taxes_amount_cents, 1000 as sub_total_including_taxes_amount_cents,
                   1100 as prepaid_credit_amount_cents, -100 as total_amount_cents""")
    con.execute("""create table billing.credit_note_applications (credit_note_id varchar, invoice_id varchar,
                   applied_on date, amount_cents bigint)""")
    con.execute("create table billing.coupon_credits (invoice_id varchar, applied_coupon_id varchar, amount_cents bigint)")
    con.execute("create table billing.progressive_billing_credits (invoice_id varchar, fee_id varchar, amount_cents bigint)")
    con.execute("""create table billing.fees as select 'i1' as invoice_id, 1000 as amount_cents, 0 as taxes_amount_cents,
                   1000 as total_amount_cents""")
    con.execute("create table billing.invoice_taxes as select 'i1' as invoice_id, 0 as amount_cents")
    con.execute("""create table marts.fct_event_loads as select date '2026-10-10' as arrival_date, 10 as events_raw,
                   7 as events_accepted, 1 as events_duplicate, 1 as events_rejected""")
    con.close()
    assert not invoice_arithmetic(settings=settings).passed  # 11.00 of credits on a 10.00 invoice
    assert not every_event_is_accounted_for(settings=settings).passed  # 10 raw, 9 accounted for
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    # 10.00 + 2.00 taxes = 12.00 including taxes; 5.00 of credits; 7.00 due
    con.execute("""update billing.invoices set prepaid_granted_credit_amount_cents = 0, taxes_amount_cents = 200,
                   sub_total_including_taxes_amount_cents = 1200, prepaid_credit_amount_cents = 500,
                   total_amount_cents = 700""")
    con.close()
    assert not invoice_arithmetic(settings=settings).passed  # 2.00 of taxes, none applied
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("update billing.invoice_taxes set amount_cents = 200")
    con.close()
    assert invoice_arithmetic(settings=settings).passed
    # a stored total that its parts do not give (12.00 - 5.00 is 7.00, not 7.01), then a fee's
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("update billing.invoices set total_amount_cents = 701")
    con.close()
    assert not invoice_arithmetic(settings=settings).passed
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("update billing.invoices set total_amount_cents = 700")
    con.execute("update billing.fees set total_amount_cents = 1001")  # 10.00 + 0 taxes is 10.00
    con.close()
    assert not invoice_arithmetic(settings=settings).passed
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("update billing.fees set total_amount_cents = 1000")
    con.close()
    assert invoice_arithmetic(settings=settings).passed
    # a credit note's 3.00 on the invoice, but no credit recorded as given to it
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("update billing.invoices set credit_notes_amount_cents = 300, total_amount_cents = 400")  # 12 - 3 - 5
    con.close()
    assert not invoice_arithmetic(settings=settings).passed
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("insert into billing.credit_note_applications values ('cn1', 'i1', date '2026-12-02', 300)")
    # the note: 4.00 of items + 0.80 of tax = 4.80 = 1.80 credit + 3.00 refund; its 1.80: 3.00 used?
    con.execute("""create table billing.credit_notes as select 'cn1' as credit_note_id, 'MTH-001-001-CN001' as number,
                   400 as sub_total_excluding_taxes_amount_cents, 80 as taxes_amount_cents, 480 as total_amount_cents,
                   180 as credit_amount_cents, 300 as refund_amount_cents, 300 as consumed_amount_cents,
                   0 as balance_amount_cents, 0 as voided_amount_cents, date '2026-12-02' as as_of,
                   0 as coupons_adjustment_amount_cents, 0.0::decimal(38, 12) as precise_coupons_adjustment_amount_cents""")
    con.execute("create table billing.credit_note_items as select 'cn1' as credit_note_id, 400 as amount_cents")
    con.close()
    assert invoice_arithmetic(settings=settings).passed
    # a coupon's 2.00 off the fees: 10.00 - 2.00 = 8.00 + 2.00 taxes = 10.00 - 3.00 - 5.00 = 2.00 due,
    # but no coupon credit recorded for it
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("""update billing.invoices set coupons_amount_cents = 200, sub_total_excluding_taxes_amount_cents = 800,
                   sub_total_including_taxes_amount_cents = 1000, total_amount_cents = 200""")
    con.close()
    assert not invoice_arithmetic(settings=settings).passed
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("insert into billing.coupon_credits values ('i1', 'ac1', 200)")
    con.close()
    assert invoice_arithmetic(settings=settings).passed
    assert not credit_note_arithmetic(settings=settings).passed  # 3.00 used of a 1.80 credit
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("update billing.credit_notes set credit_amount_cents = 300, refund_amount_cents = 180")
    con.close()
    assert credit_note_arithmetic(settings=settings).passed
    # the items gave back 1.004 of coupons (1.00 half-up): their sub-total is 4.00 - 1.004 = 2.996 -> 3.00,
    # not the 4.00 stored
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("""update billing.credit_notes set coupons_adjustment_amount_cents = 100,
                   precise_coupons_adjustment_amount_cents = 100.4""")
    con.close()
    assert not credit_note_arithmetic(settings=settings).passed
    # 3.00 + 0.60 of tax = 3.60 = 3.00 credit (all used) + 0.60 refund
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("""update billing.credit_notes set sub_total_excluding_taxes_amount_cents = 300, taxes_amount_cents = 60,
                   total_amount_cents = 360, credit_amount_cents = 300, refund_amount_cents = 60""")
    con.close()
    assert credit_note_arithmetic(settings=settings).passed


def test_the_raw_events_check_reads_only_the_rows_its_schema_could_reject(tmp_path):
    # 1,000 readable events and one quarantined with its text pass; the check validates the one
    import duckdb

    from dagster_project.defs.checks import raw_events_schema

    settings = settings_for(tmp_path, tmp_path)

    def warehouse_with(broken: str | None = None) -> None:
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
        con.execute("create schema if not exists raw")
        con.execute("""create or replace table raw.events as
                       select date '2026-10-10' as arrival_date, 'd/a.jsonl' as source_file, i::bigint as line_number,
                           't' || i as transaction_id, 'c' as code, 's' as external_subscription_id,
                           timestamp '2026-10-10 10:00' as event_at, null::varchar as load_error
                       from range(1, 1001) t(i)""")
        con.execute("insert into raw.events values ('2026-10-10', 'd/a.jsonl', 1001, null, null, null, null, 'invalid_json')")
        con.execute("""create or replace table raw.rejected_lines as
                       select date '2026-10-10' as arrival_date, 'd/a.jsonl' as source_file, 1001::bigint as line_number,
                           '{' as raw_line""")
        if broken:
            con.execute(broken)
        con.close()

    warehouse_with()
    result = raw_events_schema(settings=settings)
    assert result.passed and (result.metadata["rows"].value, result.metadata["rows_in_table"].value) == (1, 1001)
    for broken in ("delete from raw.rejected_lines",  # quarantined, without the line's text
                   "update raw.events set event_at = null where line_number = 7",  # readable, no time
                   "update raw.events set code = null where line_number = 7",  # readable, no metric code
                   "update raw.events set line_number = 0 where line_number = 8"):
        warehouse_with(broken)
        assert not raw_events_schema(settings=settings).passed, broken
