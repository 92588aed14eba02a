"""`{"webhook_endpoint": ...}` and `{"alert": ...}` catalog bodies (issue #24, feature 7): what is
accepted, what is refused by name (file, body, field), and the catalog tables they become."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from dagster_project.catalog import CatalogError, read_catalog
from dagster_project.catalog import tables
from dagster_project.catalog.field_check import field_problems
from dagster_project.catalog.models import BODY_MODELS

BASE = [
    {"billable_metric": {"name": "Tokens", "code": "tokens", "aggregation_type": "sum_agg", "field_name": "tokens"}},
    {"plan": {"name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
              "charges": [{"billable_metric_code": "tokens", "charge_model": "standard",
                           "properties": {"amount": "0.001"}}]}},
    {"customer": {"external_id": "acme", "currency": "USD"}},
    {"subscription": {"external_customer_id": "acme", "plan_code": "pro", "external_id": "sub_acme"}},
]
ENDPOINT = {"webhook_url": "https://hooks.example.com/lago", "signature_algo": "hmac"}
ALERT = {"alert_type": "current_usage_amount", "code": "spend", "name": "Spend",
         "external_subscription_id": "sub_acme",
         "thresholds": [{"code": "warn", "value": 1000}, {"value": "2500.5"}, {"code": "every", "value": 5000,
                                                                             "recurring": True}]}


def _catalog(tmp_path: Path, *bodies: dict):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "catalog.json").write_text(json.dumps([*BASE, *bodies]))
    return read_catalog(folder)


def _problems(tmp_path: Path, *bodies: dict) -> list[str]:
    with pytest.raises(CatalogError) as excinfo:
        _catalog(tmp_path, *bodies)
    return excinfo.value.problems


def test_an_endpoint_and_an_alert_become_rows_of_their_catalog_tables(tmp_path):
    catalog = _catalog(tmp_path, {"webhook_endpoint": {**ENDPOINT, "event_types": [" Alert.Triggered", "invoice.created"]}},
                       {"alert": ALERT})
    (endpoint,) = tables.webhook_endpoints(catalog)
    assert (endpoint["webhook_url"], endpoint["signature_algo"], endpoint["event_types_json"]) == (
        "https://hooks.example.com/lago", "hmac", '["alert.triggered", "invoice.created"]')  # Lago's normalization
    (alert,) = tables.alerts(catalog)
    assert (alert["code"], alert["alert_type"], alert["external_subscription_id"], alert["billable_metric_code"]) == (
        "spend", "current_usage_amount", "sub_acme", None)
    assert json.loads(alert["thresholds_json"]) == [
        {"code": "warn", "value": "1000", "recurring": False}, {"code": None, "value": "2500.5", "recurring": False},
        {"code": "every", "value": "5000", "recurring": True}]


def test_an_endpoint_that_takes_every_type_keeps_no_list(tmp_path):
    catalog = _catalog(tmp_path, {"webhook_endpoint": {**ENDPOINT, "event_types": ["*"]}})
    assert tables.webhook_endpoints(catalog)[0]["event_types_json"] is None


def test_an_endpoint_s_created_at_is_kept_as_its_day_in_utc(tmp_path):
    # 2026-10-15T23:30:00-02:00 is 2026-10-16T01:30Z: the endpoint's day is Oct 16 (UTC, as every date here)
    catalog = _catalog(tmp_path, {"webhook_endpoint": {**ENDPOINT, "created_at": "2026-10-15T23:30:00-02:00"}})
    assert tables.webhook_endpoints(catalog)[0]["created_on"] == dt.date(2026, 10, 16)
    (tmp_path / "without").mkdir()
    assert tables.webhook_endpoints(_catalog(tmp_path / "without", {"webhook_endpoint": ENDPOINT}))[0]["created_on"] is None


def test_jwt_signatures_are_refused_as_not_supported_yet():
    assert field_problems("webhook_endpoint", BODY_MODELS["webhook_endpoint"], {**ENDPOINT, "signature_algo": "jwt"}) == [
        "signature_algo: Lago's signature_algo 'jwt' is not supported yet by Meterhouse"]


def test_an_endpoint_without_signature_algo_is_refused_since_lago_would_sign_it_with_jwt(tmp_path):
    assert _problems(tmp_path, {"webhook_endpoint": {"webhook_url": "https://hooks.example.com/lago"}}) == [
        "catalog.json, body 5 (webhook_endpoint 'https://hooks.example.com/lago'), field signature_algo: Lago signs "
        "with 'jwt' when no signature_algo is given, which Meterhouse does not support yet: give signature_algo 'hmac'"]


def test_a_webhook_type_meterhouse_does_not_send_is_refused_by_name(tmp_path):
    problems = _problems(tmp_path, {"webhook_endpoint": {**ENDPOINT, "event_types": ["invoice.finalized",
                                                                                      "customer.created"]}})
    sent = ("alert.triggered, invoice.created, credit_note.created, wallet_transaction.created, "
            "wallet.depleted_ongoing_balance")
    where = "catalog.json, body 5 (webhook_endpoint 'https://hooks.example.com/lago'), field event_types"
    assert problems == [
        f"{where}.0: Meterhouse does not send 'invoice.finalized' webhooks (Lago has no such webhook: it sends "
        f"invoice.created when an invoice is finalized); it sends {sent}",
        f"{where}.1: Meterhouse does not send 'customer.created' webhooks; it sends {sent}"]


def test_an_endpoint_url_that_is_not_http_is_refused(tmp_path):
    (problem,) = _problems(tmp_path, {"webhook_endpoint": {**ENDPOINT, "webhook_url": "ftp://x"}})
    assert problem.endswith("field webhook_url: Value error, 'ftp://x' is not an http:// or https:// URL")


def test_an_alert_on_an_unknown_subscription_or_metric_is_refused(tmp_path):
    problems = _problems(tmp_path, {"alert": {**ALERT, "external_subscription_id": "sub_x"}},
                         {"alert": {**ALERT, "code": "units", "alert_type": "billable_metric_current_usage_units",
                                    "billable_metric_code": "images"}})
    assert problems == [
        "catalog.json, body 5 (alert 'spend'), field external_subscription_id: unknown subscription 'sub_x'",
        "catalog.json, body 6 (alert 'units'), field billable_metric_code: unknown billable metric 'images'"]


@pytest.mark.parametrize(("change", "message"), [
    ({"thresholds": []}, "thresholds: Value error, at least one threshold is required (Lago: value_is_mandatory)"),
    ({"thresholds": [{"value": 10}, {"value": "10"}]},
     "thresholds: Value error, two thresholds have the same value and recurring (Lago: duplicate_threshold_values)"),
    ({"thresholds": [{"value": 0, "recurring": True}]},
     "thresholds: Value error, a recurring threshold's value must be above 0 (Lago: recurring_value_is_negative)"),
    ({"thresholds": [{"value": 1, "recurring": True}, {"value": 2, "recurring": True}]},
     "thresholds: Value error, at most one recurring threshold per alert"),
    ({"thresholds": [{"value": v} for v in range(21)]}, "thresholds: Value error, at most 20 thresholds (Lago: too_many_thresholds)"),
    ({"thresholds": [{"value": "ten"}]}, "thresholds.0.value: Input should be a valid decimal"),
    ({"alert_type": "billable_metric_current_usage_units"},
     "(body): Value error, billable_metric_code is required for a billable_metric_current_usage_units alert"),
    ({"billable_metric_code": "tokens"},
     "(body): Value error, billable_metric_code is not used by a current_usage_amount alert (remove it)"),
])
def test_alert_thresholds_and_metric_are_checked_as_lago_checks_them(tmp_path, change, message):
    (problem,) = _problems(tmp_path, {"alert": {**ALERT, **change}})
    assert problem == f"catalog.json, body 5 (alert 'spend'), field {message}"


def test_a_wallet_alert_type_is_refused_on_a_subscription_alert(tmp_path):
    (problem,) = _problems(tmp_path, {"alert": {**ALERT, "alert_type": "wallet_balance_amount"}})
    assert problem.startswith("catalog.json, body 5 (alert 'spend'), field alert_type: Input should be "
                              "'current_usage_amount', 'billable_metric_current_usage_amount'")


def test_two_alerts_of_one_type_or_code_on_one_subscription_are_refused(tmp_path):
    problems = _problems(tmp_path, {"alert": ALERT}, {"alert": {**ALERT, "code": "spend2"}},
                         {"alert": {**ALERT, "alert_type": "lifetime_usage_amount"}})
    assert problems == [
        "catalog: alert code 'sub_acme/spend' (subscription/code) is defined more than once",
        "catalog: two alerts of one type on one subscription ('sub_acme/current_usage_amount'): Lago allows one per "
        "type and metric"]
