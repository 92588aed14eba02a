"""Usage alerts (which thresholds a check crosses, the value each alert type checks) and webhook
messages (envelope, body bytes, HMAC signature, retry schedule): the pure rules of issue #24,
feature 7, with figures worked out by hand or taken from lago-api's own spec."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from dagster_project.billing.alerts import (
    Threshold,
    decimal_text,
    formatted_crossed,
    thresholds_crossed,
    usage_value,
)
from dagster_project.publish import webhooks

D = Decimal
# lago-api's spec/models/usage_monitoring/alert_spec.rb: one-time 10, 30, 50 and recurring 100.
LAGO_SPEC = [Threshold(D(10), "warn10"), Threshold(D(30), "warn30"), Threshold(D(50), "warn50"),
             Threshold(D(100), "rec", recurring=True)]


@pytest.mark.parametrize(("previous", "current", "crossed"), [
    (8, 8, []),                     # no change: nothing (the previous value itself never counts)
    (8, 30, [10, 30]),              # 10 and 30 lie in (8, 30]
    (10, 30, [30]),                 # 10 was the previous value: already crossed, not again
    (31, 60, [50]),                 # only 50 lies in (31, 60]; the first recurring step is 50 + 100 = 150
    (30, 29, []),                   # going down fires nothing
    (33, 351, [50, 150, 250, 350]),  # 50, then 50 + 100k for k = 1, 2, 3 up to 351
])
def test_the_thresholds_crossed_are_those_of_lagos_own_spec(previous, current, crossed):
    assert thresholds_crossed(D(previous), D(current), LAGO_SPEC) == [D(v) for v in crossed]


def test_a_recurring_threshold_alone_counts_its_steps_from_zero():
    # lago-api's spec: recurring 100 only, 0 -> 150 crosses 100 (200 is not reached).
    assert thresholds_crossed(D(0), D(150), [Threshold(D(100), "rec", True)]) == [D(100)]


def test_a_value_below_the_first_threshold_crosses_nothing_even_with_a_recurring_one():
    # 0 -> 9 with one-time 10, 30, 50: below the first threshold, so nothing (Lago returns early).
    assert thresholds_crossed(D(0), D(9), LAGO_SPEC) == []


def test_the_same_threshold_fires_again_once_the_value_fell_below_it_and_crosses_it_again():
    """A current-usage alert across two periods: 0 -> 1,200 cents crosses 1,000; the new period's
    usage is 300 (down: nothing, 300 becomes the previous value); 300 -> 1,050 crosses 1,000 again.
    A check with no change (1,050 -> 1,050) fires nothing: once per crossing."""
    thresholds = [Threshold(D(1000), "warn")]
    checks = [D(0), D(1200), D(300), D(1050), D(1050)]
    fired = [thresholds_crossed(prev, cur, thresholds) for prev, cur in zip(checks, checks[1:])]
    assert fired == [[D(1000)], [], [D(1000)], []]


def test_crossed_thresholds_are_formatted_as_lago_lists_them():
    # lago-api's spec: thresholds 10, 15, 50 and recurring 10; 10 and 15 crossed, then recurring
    # 60 and 70 (50 + 10, 50 + 20) on the next check. Values are Lago's BigDecimal text.
    thresholds = [Threshold(D(10), "warn10"), Threshold(D(15), "warn15"), Threshold(D(50), "warn50"),
                  Threshold(D(10), "rec", True)]
    assert formatted_crossed([D(10), D(15)], thresholds) == [
        {"code": "warn10", "value": "10.0", "recurring": False},
        {"code": "warn15", "value": "15.0", "recurring": False}]
    assert thresholds_crossed(D(55), D(72), thresholds) == [D(60), D(70)]
    assert formatted_crossed([D(60), D(70)], thresholds) == [
        {"code": "rec", "value": "60.0", "recurring": True},
        {"code": "rec", "value": "70.0", "recurring": True}]


def test_threshold_values_are_written_as_lago_writes_a_bigdecimal():
    assert [decimal_text(D(v)) for v in ("1000", "1E+3", "0.50", "12.345")] == ["1000.0", "1000.0", "0.5", "12.345"]


USAGE = {"amount_cents": 1234, "charges_usage": [
    {"billable_metric": {"code": "tokens"}, "filters": [
        {"values": {"model": ["small"]}, "units": "1500000.0", "amount_cents": 150},
        {"values": {"model": ["large"]}, "units": "270000.5", "amount_cents": 1084}]},
    {"billable_metric": {"code": "gpu_hours"}, "filters": [{"values": {}, "units": "0.0", "amount_cents": 0}]}]}


def test_each_alert_type_checks_its_own_value_of_the_current_usage():
    assert usage_value("current_usage_amount", USAGE) == D(1234)
    # Lago's max over the metric's fees: 1,500,000 small tokens against 270,000.5 large ones.
    assert usage_value("billable_metric_current_usage_units", USAGE, "tokens") == D("1500000.0")
    assert usage_value("billable_metric_current_usage_amount", USAGE, "tokens") == D(1084)
    # lifetime: the subscription's lifetime usage as progressive billing computes it
    # (`billing.lifetime_usage`), not derived again from the current usage
    assert usage_value("lifetime_usage_amount", USAGE, lifetime_usage_cents=6234) == D(6234)


def test_a_metric_alert_on_a_metric_the_plan_does_not_charge_checks_nothing():
    assert usage_value("billable_metric_current_usage_units", USAGE, "images") is None


def test_the_envelope_is_lagos_with_the_object_under_its_type():
    payload = webhooks.envelope("alert.triggered", "org-1", {"lago_id": "t1"})
    assert payload == {"webhook_type": "alert.triggered", "object_type": "triggered_alert",
                       "organization_id": "org-1", "triggered_alert": {"lago_id": "t1"}}


def test_the_body_is_compact_utf8_json_with_exact_decimal_numbers():
    body = webhooks.body_bytes({"name": "Société", "current_value": D("1500000.5"), "previous_value": 0})
    assert body == '{"name":"Société","current_value":1500000.5,"previous_value":0}'.encode("utf-8")
    assert json.loads(body, parse_float=Decimal)["current_value"] == D("1500000.5")


def test_the_hmac_signature_matches_a_vector_computed_apart():
    """Computed outside the code under test, two ways that agree:
        python -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b'org-hmac-key',
            b'{\\"webhook_type\\":\\"invoice.created\\",\\"object_type\\":\\"invoice\\"}',
            hashlib.sha256).digest()).decode())"
        echo -n '{"webhook_type":"invoice.created","object_type":"invoice"}' \\
            | openssl dgst -sha256 -hmac 'org-hmac-key' -binary | base64
    """
    body = b'{"webhook_type":"invoice.created","object_type":"invoice"}'
    assert webhooks.signature("org-hmac-key", body) == "FWncrUcire+ARm7Bc75307IX7PN+xjUaVzh90qh4oq4="
    assert webhooks.headers("org-hmac-key", body, "wh-1") == {
        "Content-Type": "application/json", "X-Lago-Signature": "FWncrUcire+ARm7Bc75307IX7PN+xjUaVzh90qh4oq4=",
        "X-Lago-Signature-Algorithm": "hmac", "X-Lago-Unique-Key": "wh-1"}


def test_the_retry_waits_grow_as_the_fourth_power_of_the_failures_plus_two_seconds():
    # lago-api's wait without jitter: 1**4 + 2 = 3, 2**4 + 2 = 18, 3**4 + 2 = 83
    assert [webhooks.retry_wait_seconds(n) for n in (1, 2, 3)] == [3, 18, 83]


def test_a_webhook_is_tried_three_times_then_failed():
    now = dt.datetime(2026, 11, 3, 12, 0, 0)
    first = webhooks.after_attempt(0, False, now)
    assert first == webhooks.AttemptOutcome("retrying", 1, dt.datetime(2026, 11, 3, 12, 0, 3))
    second = webhooks.after_attempt(1, False, now)
    assert second == webhooks.AttemptOutcome("retrying", 2, dt.datetime(2026, 11, 3, 12, 0, 18))
    assert webhooks.after_attempt(2, False, now) == webhooks.AttemptOutcome("failed", 3, None)
    assert webhooks.after_attempt(1, True, now) == webhooks.AttemptOutcome("succeeded", 2, None)
    assert webhooks.after_attempt(4, False, now, limit=6).next_attempt_at == now + dt.timedelta(seconds=5 ** 4 + 2)


def test_an_endpoint_without_event_types_takes_every_type():
    assert webhooks.subscribed(None, "invoice.created")
    assert webhooks.subscribed(["alert.triggered"], "alert.triggered")
    assert not webhooks.subscribed(["alert.triggered"], "invoice.created")


def test_finalized_subscription_invoices_credit_notes_and_wallet_transactions_make_messages():
    invoices = [{"lago_id": "i1", "status": "finalized", "invoice_type": "subscription", "issuing_date": "2026-11-01"},
                {"lago_id": "i2", "status": "draft", "invoice_type": "subscription", "issuing_date": "2026-12-01"},
                {"lago_id": "i3", "status": "finalized", "invoice_type": "credit", "issuing_date": "2026-10-01"}]
    notes = [{"lago_id": "n1", "issuing_date": "2026-11-05"}]
    transactions = [{"lago_id": "t1", "created_at": "2026-10-01T00:00:00Z"}]
    found = webhooks.object_messages("org", invoices, notes, transactions)
    assert [(m.webhook_type, m.object_id, m.created_on.isoformat()) for m in found] == [
        ("invoice.created", "i1", "2026-11-01"), ("credit_note.created", "n1", "2026-11-05"),
        ("wallet_transaction.created", "t1", "2026-10-01")]
    # the same fact gives the same message id in another run
    assert found[0].message_id == webhooks.object_messages("org", invoices[:1], [], [])[0].message_id


ALERT_ROW = {"alert_id": "a1", "code": "spend", "name": None, "alert_type": "current_usage_amount",
             "external_subscription_id": "sub_a", "billable_metric_code": None,
             "thresholds_json": json.dumps([{"code": "warn", "value": "1000", "recurring": False}])}
SUBSCRIPTIONS = {"sub_a": {"subscription_id": "s1", "external_customer_id": "acme"}}


def _check(usage: dict, previous: dict, wallets=(), depleted=frozenset()):
    return webhooks.monitoring_checks("org", dt.date(2026, 10, 15), [ALERT_ROW], SUBSCRIPTIONS, usage, {},
                                      list(wallets), previous, set(depleted))


def test_a_check_that_crosses_a_threshold_makes_one_message_and_remembers_the_value():
    checks = _check({"sub_a": {"amount_cents": 1200, "charges_usage": []}}, {"a1": D(900)})
    (found,) = checks.messages
    alert = json.loads(found.body)["triggered_alert"]
    # 900 -> 1,200 crosses 1,000
    assert (alert["previous_value"], alert["current_value"], alert["crossed_thresholds"], alert["triggered_at"]) == (
        900, 1200, [{"code": "warn", "value": "1000.0", "recurring": False}], "2026-10-15T00:00:00Z")
    assert checks.alert_values == {"a1": D(1200)}


def test_a_subscription_without_an_open_period_is_not_checked_and_keeps_its_value():
    checks = _check({}, {"a1": D(900)})
    assert (checks.messages, checks.alert_values) == ([], {"a1": D(900)})


def test_a_wallet_is_announced_depleted_once_until_its_balance_is_above_zero_again():
    def wallet(cents):
        return {"lago_id": "w1", "status": "active", "ongoing_balance_cents": cents}

    first = _check({}, {}, [wallet(0)])  # at zero: depleted (Lago's `<= 0`)
    assert [m.webhook_type for m in first.messages] == ["wallet.depleted_ongoing_balance"]
    assert first.depleted == {"w1": True}
    assert _check({}, {}, [wallet(-300)], {"w1"}).messages == []  # still depleted: not again
    refilled = _check({}, {}, [wallet(500)], {"w1"})
    assert (refilled.messages, refilled.depleted) == ([], {"w1": False})
    assert _check({}, {}, [{**wallet(-1), "status": "terminated"}]).messages == []


def test_each_message_goes_to_the_endpoints_that_take_its_type():
    found = webhooks.object_messages("org", [], [], [{"lago_id": "t1", "created_at": "2026-10-01T00:00:00Z"}])
    endpoints = [{"webhook_endpoint_id": "e1", "webhook_url": "http://a", "event_types_json": None},
                 {"webhook_endpoint_id": "e2", "webhook_url": "http://b", "event_types_json": '["alert.triggered"]'}]
    (row,) = webhooks.addressed(found, endpoints)
    assert (row["webhook_url"], row["webhook_type"], row["webhook_id"]) == (
        "http://a", "wallet_transaction.created", webhooks.webhook_id(found[0].message_id, "e1"))


def test_an_endpoint_created_later_receives_only_the_messages_dated_from_its_day_on():
    # Transactions of Oct 1, Oct 15 and Oct 16; the endpoint was created on Oct 15 (at 10:30): it
    # gets Oct 15's (the batch's day: the same day counts) and Oct 16's, not the Oct 1 history. An
    # endpoint without `created_on` gets all three.
    found = webhooks.object_messages("org", [], [], [{"lago_id": f"t{d}", "created_at": f"2026-10-{d:02d}T08:00:00Z"}
                                                     for d in (1, 15, 16)])
    endpoints = [{"webhook_endpoint_id": "late", "webhook_url": "http://late", "event_types_json": None,
                  "created_on": dt.date(2026, 10, 15)},
                 {"webhook_endpoint_id": "old", "webhook_url": "http://old", "event_types_json": None, "created_on": None}]
    rows = webhooks.addressed(found, endpoints)
    assert sorted((r["endpoint_id"], r["object_id"]) for r in rows) == [
        ("late", "t15"), ("late", "t16"), ("old", "t1"), ("old", "t15"), ("old", "t16")]


def test_deliver_webhooks_refuses_to_post_unsigned_and_says_when_there_is_no_outbox(tmp_path, monkeypatch, capfd):
    import duckdb
    from click.testing import CliRunner

    from dagster_project.cli import main

    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    monkeypatch.delenv("METERHOUSE_WEBHOOK_HMAC_KEY", raising=False)
    refused = CliRunner().invoke(main, ["deliver-webhooks", "--warehouse", str(warehouse)])
    assert refused.exit_code == 2
    assert "error: METERHOUSE_WEBHOOK_HMAC_KEY is not set" in capfd.readouterr().err
    monkeypatch.setenv("METERHOUSE_WEBHOOK_HMAC_KEY", "k")
    empty = CliRunner().invoke(main, ["deliver-webhooks", "--warehouse", str(warehouse), "--now", "2026-11-02T12:00:00"])
    assert (empty.exit_code, capfd.readouterr().out.strip()) == (
        0, "webhooks at 2026-11-02T12:00:00Z: 0 posted; no webhook outbox in this warehouse")


def test_the_outbox_adds_a_runs_new_rows_in_order_once_also_without_alerts_or_wallets(tmp_path):
    # a catalog with a webhook endpoint but no alert (or no wallet) failed every run: DuckDB's
    # executemany refuses an empty list
    import duckdb

    from dagster_project.store import webhook_outbox as store

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    store.ensure_tables(con)

    def row(n: int, day: int) -> dict:
        return {"webhook_id": f"wh{n}", "message_id": f"m{n}", "webhook_type": "invoice.created", "object_id": f"inv{n}",
                "created_on": dt.date(2026, 11, day), "endpoint_id": "all", "webhook_url": "http://127.0.0.1/hooks",
                "body": f'{{"n":{n}}}'}

    assert store.record_checks(con, [row(1, 1), row(2, 1)], {"spend": D("1.5"), "lifetime": D("0")},
                               {"w2": False, "w1": True}) == 2
    assert con.execute("select * from state.alert_values order by 1").fetchall() == [("lifetime", "0"), ("spend", "1.5")]
    assert con.execute("select * from state.wallet_depletion order by 1").fetchall() == [("w1", True), ("w2", False)]
    assert store.record_checks(con, [row(2, 1), row(3, 2)], {}, {}) == 1  # wh2 is there already
    assert store.record_checks(con, [], {}, {}) == 0
    assert con.execute("""select webhook_id, message_id, webhook_type, object_id, created_on, endpoint_id, webhook_url,
                                 body, outbox_order, status, attempts, next_attempt_at, last_http_status
                          from state.webhook_outbox order by outbox_order""").fetchall() == [
        ("wh1", "m1", "invoice.created", "inv1", dt.date(2026, 11, 1), "all", "http://127.0.0.1/hooks", '{"n":1}', 1,
         "pending", 0, None, None),
        ("wh2", "m2", "invoice.created", "inv2", dt.date(2026, 11, 1), "all", "http://127.0.0.1/hooks", '{"n":2}', 2,
         "pending", 0, None, None),
        ("wh3", "m3", "invoice.created", "inv3", dt.date(2026, 11, 2), "all", "http://127.0.0.1/hooks", '{"n":3}', 3,
         "pending", 0, None, None),
    ]
    # the alerts' values and the wallets' flags are replaced by each check's, here by none
    assert con.execute("select count(*) from state.alert_values").fetchone() == (0,)
    assert con.execute("select count(*) from state.wallet_depletion").fetchone() == (0,)
