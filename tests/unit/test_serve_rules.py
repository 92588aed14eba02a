"""`meterhouse serve`'s rules without a server: authentication, Lago's error bodies, event checks,
the landing file, the catalog store, the objects of created bodies, the warehouse lock."""

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from dagster_project.catalog.tables import metric_id
from dagster_project.serve import lago_api as api
from dagster_project.serve.catalog_store import CatalogStore
from dagster_project.serve.http import route
from dagster_project.serve.landing import EventLog, cut_partial_line, repair
from dagster_project.serve.objects import credits_to_cents, wallet_object_as_created
from dagster_project.serve.refresh import next_start
from dagster_project.warehouse_lock import WarehouseBusy, holding

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 12, 5, 12, 40, 0, 123456, tzinfo=dt.timezone.utc)
EVENT = {"transaction_id": "t1", "code": "mistral_tokens", "external_subscription_id": "sub_acme",
         "properties": {"tokens": 2000000, "model": "mistral-small", "type": "input"}}


def refused(call, *args) -> api.Refused:
    with pytest.raises(api.Refused) as caught:
        call(*args)
    return caught.value


# ---- authentication and error bodies ----

def test_only_the_bearer_key_of_the_server_is_authorized():
    assert api.is_authorized("Bearer s3cret", "s3cret")
    assert api.is_authorized("bearer s3cret", "s3cret")
    assert not api.is_authorized("Bearer s3cre", "s3cret")
    assert not api.is_authorized("Bearer s3cretX", "s3cret")
    assert not api.is_authorized("Basic s3cret", "s3cret")
    assert not api.is_authorized(None, "s3cret")
    assert not api.is_authorized("Bearer ", "")  # a server without a key lets nobody in


def test_a_wrong_key_gets_lagos_401_body():
    assert (api.unauthorized().status, api.unauthorized().body) == (401, {"status": 401, "error": "Unauthorized"})


def test_a_body_that_is_not_json_is_a_400_in_json():
    error = refused(api.parse_body, b"{not json")
    assert error.status == 400 and error.body["error"].startswith("BadRequest: ")


# ---- events ----

def test_an_event_sent_by_lagos_client_with_null_timestamp_and_amount_is_accepted_at_the_time_received():
    sent = {**EVENT, "timestamp": None, "precise_total_amount_cents": None}
    landed = api.single_event({"event": sent}, NOW)
    assert landed == {**EVENT, "timestamp": "2026-12-05T12:40:00.123456Z"}
    shown = api.event_object(landed, NOW)
    assert shown["timestamp"] == "2026-12-05T12:40:00.123Z"  # a string, as the client requires
    assert shown["precise_total_amount_cents"] is None


def test_an_event_keeps_the_timestamp_it_was_sent_with():
    landed = api.single_event({"event": {**EVENT, "timestamp": 1796474400}}, NOW)
    assert landed["timestamp"] == 1796474400
    # 1796474400 s after 1970-01-01 = 20792 days (2026-12-05) + 12 h 40 min
    assert api.event_object(landed, NOW)["timestamp"] == "2026-12-05T12:40:00.000Z"


@pytest.mark.parametrize(("value", "expected"), [
    ("1796474400.5", dt.datetime(2026, 12, 5, 12, 40, 0, 500000, tzinfo=dt.timezone.utc)),
    (1796474400.25, dt.datetime(2026, 12, 5, 12, 40, 0, 250000, tzinfo=dt.timezone.utc)),
    ("2026-12-05T07:40:00-05:00", dt.datetime(2026, 12, 5, 12, 40, tzinfo=dt.timezone.utc)),
    ("2026-12-05T12:40:00", dt.datetime(2026, 12, 5, 12, 40, tzinfo=dt.timezone.utc)),
])
def test_timestamps_are_unix_seconds_or_iso_8601(value, expected):
    assert api.event_time(value) == expected


@pytest.mark.parametrize("value", ["yesterday", True, "-5", 7258118400, {"t": 1}])  # 7258118400 = 2200-01-01
def test_a_timestamp_the_loader_would_quarantine_is_refused(value):
    error = refused(api.single_event, {"event": {**EVENT, "timestamp": value}}, NOW)
    assert error.status == 422
    assert error.body == {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                          "error_details": {"timestamp": ["invalid_format"]}}


def test_an_event_without_ids_is_refused_naming_each_field():
    error = refused(api.single_event, {"event": {"code": "", "external_subscription_id": 7, "properties": []}}, NOW)
    assert error.body["error_details"] == {"transaction_id": ["value_is_mandatory"], "code": ["value_is_mandatory"],
                                           "external_subscription_id": ["invalid_type"],
                                           "properties": ["invalid_type"]}


def test_an_amount_for_the_dynamic_charge_model_is_refused_as_not_supported():
    error = refused(api.single_event, {"event": {**EVENT, "precise_total_amount_cents": "12.5"}}, NOW)
    assert error.body["error_details"] == {"precise_total_amount_cents": ["not_supported"]}


def test_a_batch_of_101_events_is_refused_as_lago_refuses_it():
    events = [{**EVENT, "transaction_id": f"t{i}"} for i in range(101)]
    error = refused(api.batch_events, {"events": events}, NOW)
    assert error.body["error_details"] == {"events": ["too_many_events"]}
    assert len(api.batch_events({"events": events[:100]}, NOW)) == 100


def test_an_empty_batch_is_refused_and_a_bad_event_is_named_by_its_index():
    assert refused(api.batch_events, {"events": []}, NOW).body["error_details"] == {"events": ["no_events"]}
    error = refused(api.batch_events, {"events": [EVENT, {**EVENT, "code": None}]}, NOW)
    assert error.body["error_details"] == {"1": {"code": ["value_is_mandatory"]}}


def test_events_land_as_one_json_line_each():
    lines = api.event_lines([EVENT, {**EVENT, "transaction_id": "t2"}]).decode().splitlines()
    assert [json.loads(line)["transaction_id"] for line in lines] == ["t1", "t2"]


# ---- the landing file ----

def test_events_are_appended_to_the_folder_of_their_utc_arrival_date(tmp_path):
    clock = iter([NOW, NOW, NOW + dt.timedelta(hours=12)])  # start, first append, second append (next day)
    log = EventLog(tmp_path, clock=lambda: next(clock))
    assert log.append(api.event_lines([EVENT]), 1) == dt.date(2026, 12, 5)
    assert log.append(api.event_lines([{**EVENT, "transaction_id": "t2"}] * 2), 2) == dt.date(2026, 12, 6)
    log.close()
    name = f"serve-20261205T124000-{__import__('os').getpid()}.jsonl"
    assert (tmp_path / "2026-12-05" / name).read_text().count("\n") == 1
    assert (tmp_path / "2026-12-06" / name).read_text().count("\n") == 2
    assert log.events_appended == 3


def test_a_refresh_bills_through_the_utc_date_of_the_log_after_the_writes_under_way(tmp_path):
    """04:30 UTC on 6 December is still 5 December in New York: the billing date is the UTC one,
    the date the landing folders are named by."""
    moment = dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    log = EventLog(tmp_path, clock=lambda: moment)
    assert log.billing_date() == dt.date(2026, 12, 6)


def test_a_half_written_last_line_is_cut_and_said_before_the_server_appends(tmp_path):
    day = tmp_path / "2026-12-05"
    day.mkdir()
    whole = api.event_lines([EVENT])
    (day / "serve-20261205T000000-1.jsonl").write_bytes(whole + whole[:17])
    (day / "client.jsonl").write_bytes(whole[:17])  # not the server's: left alone
    said = repair(tmp_path)
    assert (day / "serve-20261205T000000-1.jsonl").read_bytes() == whole
    assert said == [f"{day / 'serve-20261205T000000-1.jsonl'}: cut 17 bytes of a last line written only in part "
                    f"(never acknowledged)"]
    assert (day / "client.jsonl").read_bytes() == whole[:17]
    assert cut_partial_line(day / "serve-20261205T000000-1.jsonl") == 0


# ---- the catalog folder ----

METRIC = {"name": "Tokens", "code": "mistral_tokens", "aggregation_type": "sum_agg", "field_name": "tokens",
          "recurring": False, "filters": [{"key": "model", "values": ["mistral-small"]}]}
PLAN = {"name": "Mistral", "code": "mistral_plan", "amount_cents": 0, "amount_currency": "USD", "interval": "monthly",
        "charges": [{"billable_metric_id": metric_id("mistral_tokens"), "charge_model": "package",
                     "filters": [{"invoice_display_name": "small", "values": {"model": ["mistral-small"]},
                                  "properties": {"amount": "1", "free_units": 0, "package_size": 1000000}}]}]}


def test_a_plan_naming_its_metric_by_lago_id_is_written_with_the_code_the_run_reads(tmp_path):
    store = CatalogStore(tmp_path)
    store.create("billable_metric", METRIC, NOW)
    created = store.create("plan", PLAN, NOW)
    written = json.loads(created.file.read_text())
    assert written["plan"]["charges"][0]["billable_metric_id"] == "mistral_tokens"
    assert created.file.name == "api-00002-plan-mistral_plan.json"
    assert store.version == 2


def test_a_body_the_run_would_refuse_is_a_422_naming_the_field_and_nothing_is_written(tmp_path):
    store = CatalogStore(tmp_path)
    error = refused(store.create, "customer", {"external_id": "acme", "time_zone": "UTC"}, NOW)
    assert error.status == 422
    assert error.body["error_details"] == {"time_zone": ["unknown field 'time_zone' (did you mean 'timezone'?)"]}
    error = refused(store.create, "plan", PLAN, NOW)  # its metric does not exist
    assert error.body["error_details"] == {"charges.0.billable_metric_id": [
        f"unknown billable metric {metric_id('mistral_tokens')!r}"]}
    assert list(tmp_path.iterdir()) == []


def test_a_subscription_created_without_subscription_at_starts_at_the_time_of_the_call(tmp_path):
    store = CatalogStore(tmp_path)
    store.create("billable_metric", METRIC, NOW)
    store.create("plan", PLAN, NOW)
    store.create("customer", {"external_id": "acme", "currency": "USD"}, NOW)
    created = store.create("subscription", {"external_customer_id": "acme", "plan_code": "mistral_plan",
                                            "external_id": "sub_acme"}, NOW)
    assert json.loads(created.file.read_text())["subscription"]["subscription_at"] == "2026-12-05T12:40:00Z"
    assert created.model.subscription_at == dt.datetime(2026, 12, 5, 12, 40)


def test_a_wallet_as_created_holds_its_paid_and_granted_credits():
    """The seed's wallet: 100 paid + 25 granted credits at rate 1.0 -> 125 credits = 125.00 USD =
    12,500 cents; at rate 0.015, 125 x 0.015 = 1.875 USD -> 188 cents (half-up)."""
    from dagster_project.catalog.models import Wallet

    wallet = Wallet(external_customer_id="acme", currency="USD", rate_amount=Decimal("1.0"),
                    paid_credits=Decimal("100.0"), granted_credits=Decimal("25.0"))
    shown = wallet_object_as_created(wallet)
    assert (shown["credits_balance"], shown["balance_cents"], shown["ongoing_balance_cents"]) == ("125.0", 12500, 12500)
    assert credits_to_cents(Decimal(125), Decimal("0.015"), "USD") == 188
    waiting = wallet_object_as_created(wallet.model_copy(update={"invoice_requires_successful_payment": True}))
    assert waiting["balance_cents"] == 2500  # the 25 granted; the 100 paid wait for their payment


def test_a_wallet_as_created_was_synced_on_its_creation_day_when_credits_settled_then():
    """Lago stamps `last_balance_sync_at` when credits come in; a run publishes the day (midnight
    UTC). Created at 23:30 in New York on Dec 4 = 04:30 UTC on Dec 5. Paid credits waiting for
    their payment, or credits worth less than a cent (0.004 x 1.0 = 0.4 cent -> 0), settle nothing."""
    from dagster_project.catalog.models import Wallet

    new_york = dt.timezone(dt.timedelta(hours=-5))
    wallet = Wallet(external_customer_id="acme", currency="USD", rate_amount=Decimal("1.0"),
                    paid_credits=Decimal("100.0"), granted_credits=Decimal("0"),
                    created_at=dt.datetime(2026, 12, 4, 23, 30, tzinfo=new_york))

    def synced(**changes):
        return wallet_object_as_created(wallet.model_copy(update=changes))["last_balance_sync_at"]

    assert synced() == "2026-12-05T00:00:00Z"
    assert synced(invoice_requires_successful_payment=True) is None
    assert synced(invoice_requires_successful_payment=True, granted_credits=Decimal("25")) == "2026-12-05T00:00:00Z"
    assert synced(paid_credits=Decimal("0.004")) is None
    assert synced(created_at=None) is None


def test_a_wallet_as_created_rounds_its_granted_and_paid_credits_to_cents_apart_as_a_run_does():
    """A run tops a wallet up with its granted and its paid credits apart, each rounded half-up:
    0.005 + 0.005 credits at rate 1.0 are 1 + 1 = 2 cents (not 0.01 -> 1); 0.004 + 0.004 are
    0 + 0 cents (not 0.008 -> 1), so no credit settled and no sync day."""
    from dagster_project.catalog.models import Wallet

    def shown(granted, paid):
        wallet = Wallet(external_customer_id="acme", currency="USD", rate_amount=Decimal("1.0"),
                        paid_credits=Decimal(paid), granted_credits=Decimal(granted), created_at=dt.datetime(2026, 12, 5))
        o = wallet_object_as_created(wallet)
        return o["balance_cents"], o["balance"], o["ongoing_balance_cents"], o["last_balance_sync_at"]

    assert shown("0.005", "0.005") == (2, "0.02", 2, "2026-12-05T00:00:00Z")
    assert shown("0.004", "0.004") == (0, "0.00", 0, None)


# ---- routes, refresh timing ----

def test_routes_take_lagos_paths_with_their_ids():
    assert route("GET", "/api/v1/customers/acme%20inc/current_usage") == ("get_current_usage", ["acme inc"])
    assert route("POST", "/api/v1/events/batch") == ("post_events_batch", [])
    assert route("DELETE", "/api/v1/events") is None


def test_a_refresh_starts_at_once_then_at_most_every_interval_and_only_when_something_is_new():
    assert next_start(dirty=True, last_started=None, interval=60, now=1000) == 1000
    assert next_start(dirty=True, last_started=990, interval=60, now=1000) == 1050
    assert next_start(dirty=True, last_started=900, interval=60, now=1000) == 1000
    assert next_start(dirty=False, last_started=900, interval=60, now=1000) is None


# ---- one writer per warehouse ----

def test_a_second_holder_of_the_warehouse_lock_is_refused_naming_the_first(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    with holding(warehouse, "meterhouse serve refresh"):
        with pytest.raises(WarehouseBusy, match=r"is being billed by pid \d+: meterhouse serve refresh"):
            with holding(warehouse, "meterhouse run"):
                pass
    with holding(warehouse, "meterhouse run"):  # free again once released
        pass


def test_meterhouse_run_is_refused_with_exit_status_3_while_another_process_bills_the_warehouse(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    with holding(warehouse, "meterhouse serve refresh"):
        result = subprocess.run(
            [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(REPO / "seeds/mistral/catalog"),
             "--events", str(REPO / "seeds/mistral/events"), "--warehouse", str(warehouse),
             "--out", str(tmp_path / "out"), "--through", "2026-11-14"],
            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 3, result.stderr
    assert "is being billed by pid" in result.stderr and "meterhouse serve refresh" in result.stderr
    assert not warehouse.exists() and not (tmp_path / "out").exists()


def test_a_metrics_expression_is_shown_by_the_http_api_and_left_out_when_it_has_none():
    """Lago's `BillableMetricObject` types `expression` as a string (no null): shown when set only."""
    import datetime as dt

    from dagster_project.catalog.models import BillableMetric
    from dagster_project.serve.objects import billable_metric_object

    body = {"name": "LLM tokens", "code": "llm_tokens", "aggregation_type": "sum_agg", "field_name": "billable"}
    at = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    expression = "event.properties.input + event.properties.cached * 0.1"
    shown = billable_metric_object(BillableMetric.model_validate({**body, "expression": expression}), at)
    assert shown["expression"] == expression and shown["field_name"] == "billable"
    assert "expression" not in billable_metric_object(BillableMetric.model_validate(body), at)


def test_a_limited_wallet_shows_its_applies_to_before_any_run():
    from dagster_project.catalog.models import Wallet
    from dagster_project.serve.objects import wallet_object_as_created

    body = {"external_customer_id": "acme", "currency": "USD", "rate_amount": "1", "code": "promo",
            "granted_credits": "30", "created_at": "2026-10-01T00:00:00Z"}
    limited = Wallet.model_validate({**body, "applies_to": {"billable_metric_codes": ["tokens"]}})
    assert wallet_object_as_created(limited)["applies_to"] == {"fee_types": [], "billable_metric_codes": ["tokens"]}
    assert "applies_to" not in wallet_object_as_created(Wallet.model_validate(body))
