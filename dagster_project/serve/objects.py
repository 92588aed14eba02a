"""Lago's objects for the catalog bodies (`BillableMetricObject`, `PlanObject`, `CustomerObject`,
`SubscriptionObject`, `WalletObject` as created), from the checked models: pure functions.

The ids are those the run publishes (`catalog/tables.py`: deterministic from the codes), so an
id returned here is the one found in invoices, current usage and wallets later.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from dagster_project.billing.money import from_cents, stable_id, to_cents
from dagster_project.catalog.reader import Catalog, effective_plan_of, wallet_key
from dagster_project.catalog.tables import (
    charge_filter_id,
    charge_id,
    customer_id,
    customers,
    metric_id,
    plan_id,
    subscription_id,
)
from dagster_project.publish.lago_json import DEFAULT_PAYMENT_METHOD, applies_to_object, customer_object


def _ts(moment: dt.datetime | None) -> str | None:
    """A catalog time (naive UTC) or an aware one, as Lago writes it."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: object) -> object:
    """JSON values of a model's field (Decimals as their text)."""
    return json.loads(json.dumps(value, default=str))


def billable_metric_object(metric, created_at: dt.datetime) -> dict:
    return _present({
        "lago_id": metric_id(metric.code),
        "name": metric.name,
        "code": metric.code,
        "description": metric.description,
        "aggregation_type": metric.aggregation_type,
        "recurring": metric.recurring,
        "rounding_function": metric.rounding_function,
        "rounding_precision": metric.rounding_precision,
        "created_at": _ts(created_at),
        "field_name": metric.field_name,
        "expression": metric.expression,
        "filters": [{"key": f.key, "values": list(f.values)} for f in metric.filters],
    }, "expression")


def _present(obj: dict, *names: str) -> dict:
    """`obj` without those of `names` that are None (fields Lago's schema types without null)."""
    return {k: v for k, v in obj.items() if not (k in names and v is None)}


def plan_object(plan, created_at: dt.datetime) -> dict:
    created = _ts(created_at)
    return _present({
        "lago_id": plan_id(plan.code),
        "name": plan.name,
        "invoice_display_name": plan.invoice_display_name,
        "created_at": created,
        "code": plan.code,
        "interval": plan.interval,
        "description": plan.description,
        "amount_cents": plan.amount_cents,
        "amount_currency": plan.amount_currency,
        "trial_period": float(plan.trial_period) if plan.trial_period is not None else None,
        "pay_in_advance": plan.pay_in_advance,
        "bill_charges_monthly": None,
        "active_subscriptions_count": 0,
        "draft_invoices_count": 0,
        "charges": [
            {
                "lago_id": charge_id(plan.code, index),
                "lago_billable_metric_id": metric_id(charge.metric_code),
                "billable_metric_code": charge.metric_code,
                "invoice_display_name": charge.invoice_display_name,
                "created_at": created,
                "charge_model": charge.charge_model,
                "pay_in_advance": charge.pay_in_advance,
                "invoiceable": charge.invoiceable,
                "regroup_paid_fees": None,
                "prorated": False,
                "min_amount_cents": charge.min_amount_cents or 0,
                "properties": _plain(charge.properties or {}),
                "filters": [
                    {"lago_id": charge_filter_id(plan.code, index, f_index),
                     "invoice_display_name": f.invoice_display_name, "properties": _plain(f.properties),
                     "values": {key: list(values) for key, values in f.values.items()}}
                    for f_index, f in enumerate(charge.filters)
                ],
                "taxes": [],
            }
            for index, charge in enumerate(plan.charges)
        ],
        "taxes": [],
    }, "invoice_display_name", "description", "trial_period", "bill_charges_monthly")


def customer_api_object(catalog: Catalog, customer) -> dict:
    """Lago's customer object. Its number (`sequential_id`, `slug`) is the run's: customers are
    numbered once, in (created_at, external_id) order (docs/architecture.md), which is this order
    as long as customers are added in time order, as the API adds them. `updated_at` is its
    `created_at` (bodies are not updated here)."""
    rows = sorted(customers(catalog), key=lambda r: (r["created_at"] or "", r["external_id"]))
    sequence, row = next((i, r) for i, r in enumerate(rows, start=1) if r["external_id"] == customer.external_id)
    shown = customer_object(row, sequence)
    shown["updated_at"] = shown["created_at"]
    return shown


def subscription_object(catalog: Catalog, subscription, now: dt.datetime) -> dict:
    """Lago's subscription object of a body as written; `status` `pending` until `subscription_at`,
    then `active` (`terminated` after `terminated_at` or `ending_at`). The plan's amount is the one
    it bills: its `plan_overrides` merged in."""
    plan = effective_plan_of(catalog, subscription)
    naive_now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    ended = min([t for t in (subscription.terminated_at, subscription.ending_at) if t is not None], default=None)
    if ended is not None and ended <= naive_now:
        status = "terminated"
    elif subscription.subscription_at is not None and subscription.subscription_at > naive_now:
        status = "pending"
    else:
        status = "active"
    started = _ts(subscription.subscription_at) if status != "pending" else None
    return {
        "lago_id": subscription_id(subscription.external_id, subscription.subscription_at),
        "external_id": subscription.external_id,
        "lago_customer_id": customer_id(subscription.external_customer_id),
        "external_customer_id": subscription.external_customer_id,
        "billing_time": subscription.billing_time,
        "name": subscription.name,
        "plan_code": plan.code,
        "plan_amount_cents": plan.amount_cents,
        "plan_amount_currency": plan.amount_currency,
        "status": status,
        "created_at": _ts(subscription.subscription_at) or _ts(naive_now),
        "canceled_at": None,
        "started_at": started,
        "ending_at": _ts(subscription.ending_at),
        "subscription_at": _ts(subscription.subscription_at) or "1970-01-01T00:00:00Z",
        "terminated_at": _ts(ended) if status == "terminated" else None,
        "previous_plan_code": None,
        "next_plan_code": None,
        "downgrade_plan_date": None,
        "trial_ended_at": None,
        "current_billing_period_started_at": None,
        "current_billing_period_ending_at": None,
        "on_termination_credit_note": "skip",  # no credit note on termination here
        "on_termination_invoice": "generate",
    }


def credits_to_cents(credits: Decimal, rate_amount: Decimal, currency: str) -> int:
    """Credits as money: `credits * rate_amount`, rounded half-up to the currency's exponent, in
    cents (billing-semantics: "money = round(credits * rate_amount)")."""
    return to_cents(Decimal(credits) * Decimal(rate_amount), currency)


def wallet_object_as_created(wallet) -> dict:
    """Lago's wallet object of a body before any run billed it: its credits of creation (granted at
    once, paid at once unless `invoice_requires_successful_payment`), nothing consumed, no usage yet.
    Each part is rounded to cents apart, as a run tops the wallet up (`billing.wallets`); when one is
    worth at least a cent, credits settled on the day the wallet was created, which is its
    `last_balance_sync_at` (at midnight UTC, the day a run publishes). A run's `wallets/<id>.json`
    replaces it as soon as one is published."""
    paid_now = Decimal(0) if wallet.invoice_requires_successful_payment else wallet.paid_credits
    credits = wallet.granted_credits + paid_now
    cents = sum(credits_to_cents(c, wallet.rate_amount, wallet.currency) for c in (wallet.granted_credits, paid_now))
    settled_on = wallet.created_at.date() if wallet.created_at is not None and cents > 0 else None  # (naive UTC)
    limits = wallet.applies_to
    return {
        "lago_id": stable_id("wallet", wallet_key(wallet)),
        "lago_customer_id": customer_id(wallet.external_customer_id),
        "external_customer_id": wallet.external_customer_id,
        "status": "active",
        "currency": wallet.currency,
        "name": wallet.name,
        "code": wallet.code,
        "priority": wallet.priority,
        "rate_amount": str(wallet.rate_amount),
        "credits_balance": str(credits),
        "balance": str(from_cents(cents, wallet.currency)),
        "balance_cents": cents,
        "consumed_credits": "0.0",
        "created_at": _ts(wallet.created_at),
        "expiration_at": _ts(wallet.expiration_at),
        "terminated_at": None,
        "last_balance_sync_at": _ts(dt.datetime.combine(settled_on, dt.time(0)) if settled_on else None),
        "invoice_requires_successful_payment": wallet.invoice_requires_successful_payment,
        "ongoing_balance_cents": cents,
        "ongoing_usage_balance_cents": 0,
        "credits_ongoing_balance": str(credits),
        "credits_ongoing_usage_balance": "0.0",
        "recurring_transaction_rules": [],
        **applies_to_object(list(limits.fee_types or []) if limits else [],
                            list(limits.billable_metric_codes or []) if limits else []),
    }


def wallet_transactions_as_created(catalog: Catalog, transaction) -> list[dict]:
    """Lago's wallet transactions of a `wallet_transaction` body, one per kind of credits it moves
    (paid and granted in, voided out), `pending` until a run settles them (the run's ledger,
    `marts.fct_wallet_transactions`, has what was settled)."""
    from dagster_project.catalog.reader import resolve_wallet

    wallet = resolve_wallet(catalog, transaction.wallet_id)
    wallet_id = stable_id("wallet", wallet_key(wallet))
    shown = []
    for kind, credits in (("paid", transaction.paid_credits), ("granted", transaction.granted_credits),
                          ("voided", transaction.voided_credits)):
        if not credits:
            continue
        amount = from_cents(credits_to_cents(credits, wallet.rate_amount, wallet.currency), wallet.currency)
        shown.append({
            "lago_id": stable_id("api_wallet_transaction", wallet_id, kind, transaction.created_at),
            "lago_wallet_id": wallet_id, "lago_invoice_id": None, "lago_credit_note_id": None,
            "lago_voided_invoice_id": None, "status": "pending", "source": "manual",
            "transaction_status": {"paid": "purchased", "granted": "granted", "voided": "voided"}[kind],
            "transaction_type": "outbound" if kind == "voided" else "inbound",
            "amount": str(amount), "credit_amount": str(credits), "remaining_amount_cents": None,
            "remaining_credit_amount": None, "priority": wallet.priority,
            "invoice_requires_successful_payment": bool(transaction.invoice_requires_successful_payment),
            "settled_at": None, "failed_at": None, "created_at": _ts(transaction.created_at),
            "metadata": [item.model_dump() for item in transaction.metadata or []], "name": transaction.name,
            "purchase_order_number": None,
            "payment_method": dict(DEFAULT_PAYMENT_METHOD),
        })
    return shown
