"""The seed's walkthrough (Lago's "Clone Mistral pricing", seeds/002: metric, plan, customer, wallet,
subscription, events, current usage) run with Lago's official Python client, unmodified, pointed at
`meterhouse serve` on a free local port; then every answer checked against Lago's OpenAPI file and
the figures worked out by hand.

The usage, by hand (package charges: ceil(tokens / 1,000,000) packages x the filter's amount):
- t1, mistral-small input, 2,000,000 tokens: 2 packages x 1 USD = 2.00 USD (sent twice: billed once)
- b1, mistral-small output, 1,000,000 tokens: 1 package x 3 USD = 3.00 USD
- b2, mistral-large input, 500,000 tokens: ceil(0.5) = 1 package x 4 USD = 4.00 USD
- b3, mistral-large output, 2,500,000 tokens: ceil(2.5) = 3 packages x 12 USD = 36.00 USD
Total 45.00 USD = 4,500 cents, no taxes (none in the catalog), 4 events.

The wallet: 100 paid + 25 granted credits at rate 1.0 = 125 credits = 12,500 cents, available at
once (no payment required); nothing consumed (no invoice finalized yet: the period is open);
ongoing usage 4,500 cents; ongoing balance 12,500 - 4,500 = 8,000 cents = 80 credits.
"""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from tests.conftest import OPENAPI
from tests.e2e.serve_process import API_KEY, poll, start

pytestmark = pytest.mark.filterwarnings("ignore")

METRIC_CODE, PLAN_CODE, CUSTOMER, SUBSCRIPTION = "mistral_tokens", "mistral_plan", "acme", "sub_acme"


def walkthrough(client):
    """The seed's Python snippets (seeds/002, lines ~38 on), the placeholders filled in; the batch
    and the retry with the same client."""
    from lago_python_client.models import (BatchEvent, BillableMetric, BillableMetricFilter, Charge, ChargeFilter,
                                           Customer, Event, Plan, Subscription, Wallet)

    model_filter = BillableMetricFilter(
      key='model',
      values=['mistral-small', 'mistral-medium', 'mistral-large']
    )
    type_filter = BillableMetricFilter(
      key='type',
      values=['input', 'output']
    )
    billable_metric = BillableMetric(
      name='Tokens',
      code=METRIC_CODE,
      description='Token usage across Mistral AI models',
      aggregation_type='sum_agg',
      field_name='tokens',
      recurring=False,
      filters=[model_filter, type_filter]
    )
    metric = client.billable_metrics.create(billable_metric)

    small_input_filter = ChargeFilter(
      invoice_display_name="mistral-small-input",
      properties={"amount": "1", "free_units": 0, "package_size": 1000000},
      values={"model": ["mistral-small"], "type": ["input"]}
    )
    small_output_filter = ChargeFilter(
      invoice_display_name="mistral-small-output",
      properties={"amount": "3", "free_units": 0, "package_size": 1000000},
      values={"model": ["mistral-small"], "type": ["output"]}
    )
    large_input_filter = ChargeFilter(
      invoice_display_name="mistral-large-input",
      properties={"amount": "4", "free_units": 0, "package_size": 1000000},
      values={"model": ["mistral-large"], "type": ["input"]}
    )
    large_output_filter = ChargeFilter(
      invoice_display_name="mistral-large-output",
      properties={"amount": "12", "free_units": 0, "package_size": 1000000},
      values={"model": ["mistral-large"], "type": ["output"]}
    )
    charge = Charge(
      billable_metric_id=metric.lago_id,  # the seed's __BILLABLE_METRIC_ID__: what creating the metric returned
      charge_model="package",
      filters=[small_input_filter, small_output_filter, large_input_filter, large_output_filter]
    )
    plan = Plan(
      name="Mistral AI Pricing",
      code=PLAN_CODE,
      amount_cents=0,
      amount_currency="USD",
      interval="monthly",
      pay_in_advance=False,
      charges=[charge]
    )
    client.plans.create(plan)

    customer = Customer(
      external_id=CUSTOMER,
      name="Acme Inc",
      email="john@acme.com",
      currency="USD",
      timezone="America/New_York"
    )
    client.customers.create(customer)

    wallet = Wallet(
      name="AI Credits",
      external_customer_id=CUSTOMER,
      currency="USD",
      paid_credits="100.0",
      granted_credits="25.0",
      rate_amount="1.0"
    )
    created_wallet = client.wallets.create(wallet)

    subscription = Subscription(
      external_customer_id=CUSTOMER,
      plan_code=PLAN_CODE,
      external_id=SUBSCRIPTION
    )
    client.subscriptions.create(subscription)

    event = Event(
      transaction_id="t1",
      code=METRIC_CODE,
      external_subscription_id=SUBSCRIPTION,
      properties={
        "tokens": 2000000,
        "model": "mistral-small",
        "type": "input"
      }
    )
    client.events.create(event)

    client.events.batch_create(BatchEvent(events=[
        Event(transaction_id=f"b{i}", code=METRIC_CODE, external_subscription_id=SUBSCRIPTION,
              properties={"tokens": tokens, "model": model, "type": kind})
        for i, (tokens, model, kind) in enumerate([(1000000, "mistral-small", "output"),
                                                   (500000, "mistral-large", "input"),
                                                   (2500000, "mistral-large", "output")], start=1)]))
    client.events.create(event)  # a retry: the same transaction id again
    return metric, created_wallet


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from lago_python_client.client import Client

    work = tmp_path_factory.mktemp("serve_walkthrough")
    server = start(work, refresh_seconds=1)
    try:
        client = Client(api_key=API_KEY, api_url=server.url)
        metric, wallet = walkthrough(client)

        def usage():
            return client.customers.current_usage(CUSTOMER, SUBSCRIPTION)

        poll(usage, lambda u: sum(c.events_count for c in u.charges_usage) == 4, 600, "the 4 events in current usage")
        yield server, client, metric, wallet
    finally:
        server.stop()


def test_current_usage_read_through_lagos_client_is_the_figure_worked_out_by_hand(served):
    _, client, _, _ = served
    usage = client.customers.current_usage(CUSTOMER, SUBSCRIPTION)
    assert (usage.currency, usage.amount_cents, usage.taxes_amount_cents, usage.total_amount_cents) == ("USD", 4500, 0, 4500)
    (charge,) = usage.charges_usage
    by_filter = {f.invoice_display_name: (Decimal(f.units), f.events_count, f.amount_cents) for f in charge.filters}
    assert by_filter == {
        "mistral-small-input": (Decimal(2000000), 1, 200),  # the retry of t1 is not billed again
        "mistral-small-output": (Decimal(1000000), 1, 300),
        "mistral-large-input": (Decimal(500000), 1, 400),
        "mistral-large-output": (Decimal(2500000), 1, 3600),
    }


def test_the_wallet_read_through_lagos_client_is_the_figure_worked_out_by_hand(served):
    _, client, _, created = served
    listed = client.wallets.find_all({"external_customer_id": CUSTOMER})["wallets"]
    assert [w.lago_id for w in listed] == [created.lago_id]
    wallet = client.wallets.find(created.lago_id)
    assert Decimal(wallet.credits_balance) == Decimal(125) and wallet.balance_cents == 12500
    assert Decimal(wallet.consumed_credits) == 0
    assert (wallet.ongoing_usage_balance_cents, wallet.ongoing_balance_cents) == (4500, 8000)
    assert Decimal(wallet.credits_ongoing_balance) == Decimal(80)
    assert Decimal(created.credits_balance) == Decimal(125)  # the answer to the create call, before any run
    # credits came in when it was created, and none went out since: the run's sync day is the
    # creation's, which the create call's answer gave already
    assert created.last_balance_sync_at is not None
    assert str(wallet.last_balance_sync_at) == str(created.last_balance_sync_at)
    assert str(wallet.last_balance_sync_at)[:10] == str(created.created_at)[:10]


def test_the_wallets_transactions_read_through_lagos_client_are_the_credits_it_was_created_with(served):
    """The wallet's two inbound transactions, newest first as Lago lists them: the 100 paid credits
    (purchased, 100.00 USD, on the credit invoice the run issued for them; no payment required, so
    settled) after the 25 granted credits (granted, 25.00 USD, no invoice). Nothing consumed yet."""
    _, client, _, created = served
    listed = client.wallet_transactions.find_all(created.lago_id)
    assert listed["meta"]["total_count"] == 2
    got = [(t.transaction_type, t.transaction_status, t.status, Decimal(t.credit_amount), Decimal(t.amount),
            t.lago_invoice_id is not None) for t in listed["wallet_transactions"]]
    assert got == [("inbound", "purchased", "settled", Decimal(100), Decimal(100), True),
                   ("inbound", "granted", "settled", Decimal(25), Decimal(25), False)]
    (purchased,) = client.wallet_transactions.find_all(created.lago_id, {"transaction_status": "purchased"})[
        "wallet_transactions"]
    assert purchased.lago_id == listed["wallet_transactions"][0].lago_id


def test_the_plan_names_its_metric_by_the_lago_id_creating_the_metric_returned(served):
    server, client, metric, _ = served
    plan = client.plans.find(PLAN_CODE)
    assert plan.charges.__root__[0].lago_billable_metric_id == metric.lago_id
    assert plan.charges.__root__[0].billable_metric_code == METRIC_CODE
    written = [json.loads(p.read_text()) for p in sorted((server.log.parent / "catalog").glob("*.json"))]
    assert [next(iter(body)) for body in written] == ["billable_metric", "plan", "customer", "wallet", "subscription"]
    assert written[1]["plan"]["charges"][0]["billable_metric_id"] == METRIC_CODE  # the folder holds the code


def test_the_events_landed_in_the_folder_of_their_utc_arrival_day(served):
    server, _, _, _ = served
    lines = [json.loads(line) for path in sorted((server.log.parent / "events").glob("*/serve-*.jsonl"))
             for line in path.read_text().splitlines()]
    assert [e["transaction_id"] for e in lines] == ["t1", "b1", "b2", "b3", "t1"]
    assert all(isinstance(e["timestamp"], str) for e in lines)  # the time received, as Lago does


def test_a_wrong_key_an_oversized_batch_and_a_bad_body_are_refused_as_lago_refuses_them(served):
    from lago_python_client.client import Client
    from lago_python_client.exceptions import LagoApiError
    from lago_python_client.models import BatchEvent, Customer, Event

    server, client, _, _ = served
    with pytest.raises(LagoApiError) as wrong_key:
        Client(api_key="not-the-key", api_url=server.url).customers.find(CUSTOMER)
    assert wrong_key.value.status_code == 401 and wrong_key.value.response == {"status": 401, "error": "Unauthorized"}
    with pytest.raises(LagoApiError) as too_many:
        client.events.batch_create(BatchEvent(events=[Event(transaction_id=f"x{i}", code=METRIC_CODE,
                                                            external_subscription_id=SUBSCRIPTION) for i in range(101)]))
    assert too_many.value.status_code == 422
    assert too_many.value.response["error_details"] == {"events": ["too_many_events"]}
    with pytest.raises(LagoApiError) as bad_body:
        client.customers.create(Customer(external_id="globex", currency="EURO"))
    assert bad_body.value.status_code == 422
    assert bad_body.value.response["error_details"] == {"currency": ["unknown currency 'EURO'"]}
    assert not list((server.log.parent / "events").glob("*/x*"))


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_every_answer_validates_against_lagos_openapi_file(served):
    import jsonschema
    import yaml

    server, _, metric, wallet = served
    spec = yaml.safe_load(OPENAPI.read_text())

    def schema(path: str, method: str, status: str) -> dict:
        answer = spec["paths"][path][method]["responses"][status]
        if "$ref" in answer:
            answer = spec["components"]["responses"][answer["$ref"].split("/")[-1]]
        return {**answer["content"]["application/json"]["schema"], "components": spec["components"]}

    headers = {"Authorization": f"Bearer {API_KEY}"}
    # t1 again (a duplicate, not billed twice). Its tokens as a string here: the file types a property
    # value as oneOf string/number/integer, which no integer can satisfy (it is both a number and an
    # integer), so an answer echoing the seed's 2000000 could not validate, Lago's own included.
    event = {"transaction_id": "t1", "code": METRIC_CODE, "external_subscription_id": SUBSCRIPTION,
             "properties": {"tokens": "2000000", "model": "mistral-small", "type": "input"}}
    invoices = httpx.get(server.url + "api/v1/invoices", headers=headers).json()["invoices"]
    assert invoices, "the wallet's paid credits make a credit invoice"
    calls = [
        ("get", "/billable_metrics/{code}", f"billable_metrics/{METRIC_CODE}", None, "200"),
        ("get", "/billable_metrics", "billable_metrics", None, "200"),
        ("get", "/plans/{code}", f"plans/{PLAN_CODE}", None, "200"),
        ("get", "/plans", "plans", None, "200"),
        ("get", "/customers", "customers", None, "200"),
        ("get", "/subscriptions/{external_id}", f"subscriptions/{SUBSCRIPTION}", None, "200"),
        ("get", "/subscriptions", "subscriptions", None, "200"),
        ("get", "/wallets/{lago_id}", f"wallets/{wallet.lago_id}", None, "200"),
        ("get", "/wallets", f"wallets?external_customer_id={CUSTOMER}", None, "200"),
        ("get", "/wallets/{lago_id}/wallet_transactions", f"wallets/{wallet.lago_id}/wallet_transactions", None, "200"),
        ("get", "/wallets/{lago_id}/wallet_transactions", "wallets/no-such-wallet/wallet_transactions", None, "404"),
        ("get", "/wallet_transactions/{lago_id}", "wallet_transactions/no-such-transaction", None, "404"),
        ("get", "/customers/{external_customer_id}/current_usage",
         f"customers/{CUSTOMER}/current_usage?external_subscription_id={SUBSCRIPTION}", None, "200"),
        ("get", "/invoices", "invoices?status=finalized", None, "200"),
        ("get", "/invoices/{lago_id}", f"invoices/{invoices[0]['lago_id']}", None, "200"),
        ("get", "/invoices/{lago_id}", "invoices/no-such-invoice", None, "404"),
        ("post", "/events", "events", {"event": event}, "200"),
        ("post", "/events/batch", "events/batch", {"events": [event]}, "200"),
        ("post", "/events/batch", "events/batch", {"events": [event] * 101}, "422"),
        ("post", "/billable_metrics", "billable_metrics", {"billable_metric": {"code": METRIC_CODE}}, "422"),
    ]
    for method, path, url, body, status in calls:
        answer = httpx.request(method.upper(), server.url + "api/v1/" + url, headers=headers, json=body)
        assert str(answer.status_code) == status, (url, answer.text)
        errors = list(jsonschema.Draft202012Validator(schema(path, method, status)).iter_errors(answer.json()))
        assert not errors, (url, [f"{e.json_path}: {e.message}" for e in errors[:5]])
    # One transaction: Lago's server answers `{"wallet_transaction": ...}` (its controller's
    # root_name); the OpenAPI file shows the bare object, which is what is inside.
    transactions = httpx.get(server.url + f"api/v1/wallets/{wallet.lago_id}/wallet_transactions", headers=headers)
    first = transactions.json()["wallet_transactions"][0]
    one = httpx.get(server.url + f"api/v1/wallet_transactions/{first['lago_id']}", headers=headers)
    assert one.status_code == 200 and one.json() == {"wallet_transaction": first}
    assert not list(jsonschema.Draft202012Validator(schema("/wallet_transactions/{lago_id}", "get", "200")).iter_errors(
        one.json()["wallet_transaction"]))
    unauthorized = httpx.get(server.url + "api/v1/plans", headers={"Authorization": "Bearer wrong"})
    assert unauthorized.status_code == 401
    assert not list(jsonschema.Draft202012Validator(schema("/plans", "get", "401")).iter_errors(unauthorized.json()))
