"""The catalog as relational tables, the form dbt and the pricing asset read it in.

One function per table, each a list of plain dicts (one row per entity), so that the shapes are
testable without a database. Ids are deterministic UUIDs of natural keys (`stable_id`), so a rerun
or another machine gives the same ids. Charge and filter properties stay JSON text: the pricing
step reads them with `Decimal`, never with floats.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from dagster_project.billing.money import stable_id
from dagster_project.billing.plan_changes import PlanTerm, resolve_plan_changes
from dagster_project.catalog.ids import charge_filter_id, charge_id, metric_id, overridden_plan_id, plan_id
from dagster_project.catalog.overrides import EffectivePlan
from dagster_project.catalog.reader import (
    ALL_FILTER_VALUES,
    Catalog,
    effective_plan_of,
    resolve_wallet,
    wallet_index,
    wallet_key,
)

__all__ = ["charge_filter_id", "charge_id", "metric_id", "plan_id"]  # the ids, kept importable from here


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)


def customer_id(external_id: str) -> str:
    return stable_id("customer", external_id)


def subscription_id(external_id: str, subscription_at: object) -> str:
    return stable_id("subscription", external_id, subscription_at or "")


def billable_metrics(catalog: Catalog) -> list[dict]:
    return [
        {
            "billable_metric_id": metric_id(m.code),
            "code": m.code,
            "name": m.name,
            "description": m.description,
            "aggregation_type": m.aggregation_type,
            "field_name": m.field_name,
            "is_recurring": m.recurring,
            "rounding_function": m.rounding_function,
            "rounding_precision": m.rounding_precision,
            "expression": m.expression,
        }
        for m in catalog.billable_metrics
    ]


def effective_plans(catalog: Catalog) -> list[EffectivePlan]:
    """The plans as billed: each catalog plan, then, for each subscription body with
    `plan_overrides` (in catalog order), its own effective plan (Lago's child plan: the parent's
    code, its own id, the override merged in by `overrides.effective_plan`)."""
    found = [EffectivePlan(plan_id(p.code), p.code, p) for p in catalog.plans]
    for s in catalog.subscriptions:
        if s.plan_overrides is not None:
            child_id = subscription_plan_id(s)
            found.append(EffectivePlan(child_id, child_id, effective_plan_of(catalog, s), plan_id(s.plan_code)))
    return found


def subscription_plan_id(s) -> str:
    """The id of the plan a subscription body bills with (its own when it has `plan_overrides`)."""
    if s.plan_overrides is None:
        return plan_id(s.plan_code)
    return overridden_plan_id(s.plan_code, s.external_id, s.subscription_at)


def charges(catalog: Catalog) -> list[dict]:
    rows = []
    for effective in effective_plans(catalog):
        plan = effective.plan
        for index, charge in enumerate(plan.charges):
            metric = catalog.metric(charge.metric_code)
            rows.append(
                {
                    "charge_id": charge_id(effective.charge_key, index),
                    "plan_id": effective.plan_id,
                    "plan_code": plan.code,
                    "charge_index": index,
                    "billable_metric_id": metric_id(metric.code),
                    "billable_metric_code": metric.code,
                    "charge_model": charge.charge_model,
                    "is_pay_in_advance": charge.pay_in_advance,
                    "invoice_display_name": charge.invoice_display_name or metric.name,
                    "min_amount_cents": charge.min_amount_cents,
                    "rounding_function": metric.rounding_function,
                    "rounding_precision": metric.rounding_precision,
                    "properties_json": _json(charge.properties),
                    "tax_codes_json": _json(charge.tax_codes),
                }
            )
    return rows


def charge_filters(catalog: Catalog) -> list[dict]:
    """One row per charge filter, with the numbers that rank filters by specificity."""
    rows = []
    for effective in effective_plans(catalog):
        for c_index, charge in enumerate(effective.plan.charges):
            metric = catalog.metric(charge.metric_code)
            declared = {f.key: f.values for f in metric.filters}
            for f_index, charge_filter in enumerate(charge.filters):
                values = expand_filter_values(charge_filter.values, declared)
                rows.append(
                    {
                        "charge_filter_id": charge_filter_id(effective.charge_key, c_index, f_index),
                        "charge_id": charge_id(effective.charge_key, c_index),
                        "filter_index": f_index,
                        "invoice_display_name": charge_filter.invoice_display_name
                        or " • ".join(v for vs in values.values() for v in vs),
                        "key_count": len(values),
                        "value_count": sum(len(v) for v in values.values()),
                        "filter_values_json": _json(values),
                        "properties_json": _json(charge_filter.properties),
                    }
                )
    return rows


def charge_filter_values(catalog: Catalog) -> list[dict]:
    """One row per (charge filter, key, accepted value): the table events are matched against."""
    rows = []
    for row in charge_filters(catalog):
        for key, values in json.loads(row["filter_values_json"]).items():
            rows.extend(
                {"charge_filter_id": row["charge_filter_id"], "charge_id": row["charge_id"], "key": key, "value": v}
                for v in values
            )
    return rows


def expand_filter_values(values: dict[str, list[str]], declared: dict[str, list[str]]) -> dict[str, list[str]]:
    """`__ALL_FILTER_VALUES__` stands for every value the metric declares for that key."""
    return {
        key: list(declared[key]) if ALL_FILTER_VALUES in vals else list(dict.fromkeys(vals))
        for key, vals in values.items()
    }


def plans(catalog: Catalog) -> list[dict]:
    """One row per effective plan (`effective_plans`): a subscription's overridden plan keeps its
    parent's code, so invoices show the plan's code as Lago does."""
    return [
        {
            "plan_id": e.plan_id,
            "code": p.code,
            "name": p.name,
            "invoice_display_name": p.invoice_display_name or p.name,
            "interval": p.interval,
            "amount_cents": p.amount_cents,
            "currency": p.amount_currency,
            "is_pay_in_advance": p.pay_in_advance,
            "trial_period_days": str(p.trial_period) if p.trial_period is not None else None,
            "tax_codes_json": _json(p.tax_codes),
            "minimum_commitment_cents": (p.minimum_commitment or {}).get("amount_cents"),
        }
        for e in effective_plans(catalog) for p in (e.plan,)
    ]


def usage_thresholds(catalog: Catalog) -> list[dict]:
    """One row per effective plan and usage threshold (progressive billing), in the plan's order: a
    subscription's overridden plan holds its override's thresholds, or its parent's."""
    return [
        {
            "usage_threshold_id": stable_id("usage_threshold", e.plan_id, index),
            "plan_id": e.plan_id,
            "plan_code": e.plan.code,
            "threshold_index": index,
            "amount_cents": t.amount_cents,
            "is_recurring": t.recurring,
            "threshold_display_name": t.threshold_display_name,
        }
        for e in effective_plans(catalog) for index, t in enumerate(e.plan.usage_thresholds)
    ]


def customers(catalog: Catalog) -> list[dict]:
    entity = catalog.billing_entity
    entity_grace = None
    entity_term = entity.net_payment_term if entity is not None else 0
    if entity is not None:
        entity_grace = entity.invoice_grace_period
        if entity_grace is None and entity.billing_configuration is not None:
            entity_grace = entity.billing_configuration.invoice_grace_period
    rows = []
    for c in catalog.customers:
        grace = c.grace_days if c.grace_days is not None else entity_grace
        rows.append(
            {
                "customer_id": customer_id(c.external_id),
                "external_id": c.external_id,
                "name": c.name,
                "legal_name": c.legal_name,
                "legal_number": c.legal_number,
                "email": c.email,
                "address_line1": c.address_line1,
                "address_line2": c.address_line2,
                "zipcode": c.zipcode,
                "city": c.city,
                "state": c.state,
                "currency": c.currency,
                "timezone": c.timezone or "UTC",
                "country": c.country,
                "tax_identification_number": c.tax_identification_number,
                "tax_codes_json": _json(c.tax_codes),
                "invoice_grace_period_days": grace or 0,
                # the customer's own term (Lago's customer object), and the one its invoices use
                "net_payment_term": c.net_payment_term,
                "net_payment_term_days": c.net_payment_term if c.net_payment_term is not None else entity_term,
                "created_at": c.created_at.isoformat() if c.created_at else None,
            }
        )
    return rows


def subscriptions(catalog: Catalog) -> list[dict]:
    """Subscriptions, with their start and end after plan changes (`billing.plan_changes`): a
    later body with the same `external_id` and a later `subscription_at` replaces the earlier one.
    The id is made from the body's own `subscription_at`."""
    rows, terms = [], []
    customers: dict[str, object] = {}
    for c in catalog.customers:
        customers.setdefault(c.external_id, c)  # (the first body of an external_id, as `Catalog.customer`)
    for s in catalog.subscriptions:
        plan = effective_plan_of(catalog, s)
        customer = customers[s.external_customer_id]
        ended = [t for t in (s.ending_at, s.terminated_at) if t is not None]
        rows.append(
            {
                "subscription_id": subscription_id(s.external_id, s.subscription_at),
                "external_id": s.external_id,
                "name": s.name,
                "customer_id": customer_id(customer.external_id),
                "external_customer_id": customer.external_id,
                "plan_id": subscription_plan_id(s),
                "plan_code": plan.code,
                "billing_time": s.billing_time,
                "interval": plan.interval,
                "timezone": customer.timezone or "UTC",
                "currency": plan.amount_currency,
                "subscription_at": s.subscription_at,
                "terminated_at": min(ended) if ended else None,
                "trial_period_days": str(plan.trial_period) if plan.trial_period else None,
                "is_plan_pay_in_advance": plan.pay_in_advance,
            }
        )
        terms.append(PlanTerm(external_id=s.external_id, subscription_at=s.subscription_at,
                              terminated_at=rows[-1]["terminated_at"], amount_cents=plan.amount_cents,
                              interval=plan.interval, billing_time=s.billing_time, timezone=rows[-1]["timezone"]))
    for row, term in zip(rows, resolve_plan_changes(terms), strict=True):
        row["subscription_at"], row["terminated_at"] = term.subscription_at, term.terminated_at
    return rows


def wallets(catalog: Catalog) -> list[dict]:
    rows = []
    for order, w in enumerate(catalog.wallets):
        rows.append(
            {
                "wallet_id": stable_id("wallet", wallet_key(w)),
                "wallet_key": wallet_key(w),
                "creation_order": order,
                "customer_id": customer_id(w.external_customer_id),
                "external_customer_id": w.external_customer_id,
                "name": w.name,
                "code": w.code,
                "currency": w.currency,
                "priority": w.priority,
                "rate_amount": str(w.rate_amount),
                "paid_credits": str(w.paid_credits),
                "granted_credits": str(w.granted_credits),
                "created_at": w.created_at,
                "expiration_at": w.expiration_at,
                "invoice_requires_successful_payment": w.invoice_requires_successful_payment,
                "fee_types_json": json.dumps(list(w.applies_to.fee_types or [])) if w.applies_to else "[]",
                "billable_metric_codes_json":
                    json.dumps(list(w.applies_to.billable_metric_codes or [])) if w.applies_to else "[]",
                "transaction_metadata_json": metadata_json(w.transaction_metadata),
            }
        )
    return rows


def metadata_json(items) -> str | None:
    """A transaction's `metadata` (`[{key, value}]`, Lago's shape) as JSON text; None when not given."""
    if items is None:
        return None
    return json.dumps([{"key": i.key, "value": i.value} for i in items])


def wallet_rules(catalog: Catalog) -> list[dict]:
    """One row per recurring top-up rule of a wallet, in the order written (`rule_index`). Credits
    are exact decimal text, as in `wallets`; `started_on` is the date `started_at` names (in its
    own offset)."""
    return [
        {
            "wallet_id": stable_id("wallet", wallet_key(w)),
            "rule_index": index,
            "trigger": r.trigger,
            "method": r.method,
            "interval": r.interval,
            "threshold_credits": _text(r.threshold_credits),
            "target_ongoing_balance": _text(r.target_ongoing_balance),
            "paid_credits": _text(r.paid_credits),
            "granted_credits": _text(r.granted_credits),
            "grants_target_top_up": r.grants_target_top_up,
            "started_on": r.started_at.date() if r.started_at else None,
            "transaction_metadata_json": metadata_json(r.transaction_metadata),
        }
        for w in catalog.wallets
        for index, r in enumerate(w.recurring_transaction_rules)
    ]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def taxes(catalog: Catalog) -> list[dict]:
    return [
        {
            "tax_id": stable_id("tax", t.code),
            "code": t.code,
            "name": t.name,
            "rate": str(t.rate),
            "description": t.description,
            "is_applied_to_organization": t.applied_to_organization,
        }
        for t in catalog.taxes
    ]


def billing_entities(catalog: Catalog) -> list[dict]:
    """The seller (at most one): what invoice documents print, and whether EU VAT is automatic."""
    return [
        {
            "billing_entity_id": stable_id("billing_entity", e.code),
            "code": e.code,
            "name": e.name,
            "country": e.country.upper() if e.country else None,
            "address_line1": e.address_line1,
            "address_line2": e.address_line2,
            "zipcode": e.zipcode,
            "city": e.city,
            "state": e.state,
            "email": e.email,
            "legal_name": e.legal_name,
            "legal_number": e.legal_number,
            "tax_identification_number": e.tax_identification_number,
            "document_number_prefix": e.document_number_prefix,
            "net_payment_term": e.net_payment_term,
            "is_eu_tax_management": e.eu_tax_management,
        }
        for e in catalog.billing_entities
    ]


def wallet_transactions(catalog: Catalog) -> list[dict]:
    """Manual top-ups and voids, in the order written; each takes effect on its `created_at` day."""
    rows = []
    wallets = wallet_index(catalog)
    for order, t in enumerate(catalog.wallet_transactions):
        wallet = resolve_wallet(catalog, t.wallet_id, wallets)
        rows.append(
            {
                "manual_transaction_id": stable_id("manual_wallet_transaction", order, t.wallet_id, t.created_at),
                "transaction_order": order,
                "wallet_id": stable_id("wallet", wallet_key(wallet)),
                "name": t.name,
                "paid_credits": str(t.paid_credits or 0),
                "granted_credits": str(t.granted_credits or 0),
                "voided_credits": str(t.voided_credits or 0),
                "invoice_requires_successful_payment": t.invoice_requires_successful_payment,
                "created_at": t.created_at,
                "metadata_json": metadata_json(t.metadata),
            }
        )
    return rows


def credit_notes(catalog: Catalog) -> list[dict]:
    """Credit note bodies, in the order written. The id is derived from what the note says (not
    from `voided_at`, which a later edit adds): a note whose content changes is another note."""
    rows = []
    for order, n in enumerate(catalog.credit_notes):
        items = [[i.fee_id, i.amount_cents] for i in n.items]
        rows.append(
            {
                "credit_note_id": stable_id("credit_note", n.invoice_id, n.created_at.date(), _json(items),
                                            n.credit_amount_cents or 0, n.refund_amount_cents or 0,
                                            n.reason or "other", n.description or ""),
                "credit_note_order": order,
                "invoice_ref": n.invoice_id,
                "reason": n.reason or "other",
                "description": n.description,
                "credit_amount_cents": n.credit_amount_cents or 0,
                "refund_amount_cents": n.refund_amount_cents or 0,
                "items_json": _json(items),
                "created_at": n.created_at,
                "voided_at": n.voided_at,
                "catalog_location": str(catalog.where[id(n)]),
            }
        )
    return rows


def _limits(coupon) -> tuple[list[str], list[str]]:
    limits = coupon.applies_to
    return (list(limits.plan_codes or []) if limits else [], list(limits.billable_metric_codes or []) if limits else [])


def coupons(catalog: Catalog) -> list[dict]:
    """Coupons as written; rates as exact decimal text; limitations as JSON lists of codes."""
    rows = []
    for c in catalog.coupons:
        plan_codes, metric_codes = _limits(c)
        rows.append({
            "coupon_id": stable_id("coupon", c.code), "code": c.code, "name": c.name, "description": c.description,
            "coupon_type": c.coupon_type, "amount_cents": c.amount_cents, "amount_currency": c.amount_currency,
            "percentage_rate": _text(c.percentage_rate), "frequency": c.frequency,
            "frequency_duration": c.frequency_duration, "is_reusable": c.reusable, "expiration": c.expiration,
            "expiration_at": c.expiration_at, "plan_codes_json": _json(plan_codes),
            "billable_metric_codes_json": _json(metric_codes),
        })
    return rows


def applied_coupons(catalog: Catalog) -> list[dict]:
    """Coupons applied to customers, in the order written, with the values that apply: the
    customer's overrides, else the coupon's. The id is made from the customer, the coupon, the day
    and how many identical applications come before, so adding a body keeps the others' ids."""
    coupon_of = {c.code: c for c in catalog.coupons}
    rows, seen = [], {}
    for order, a in enumerate(catalog.applied_coupons):
        c = coupon_of[a.coupon_code]
        key = (a.external_customer_id, a.coupon_code, a.created_at.isoformat())
        seen[key] = seen.get(key, -1) + 1
        plan_codes, metric_codes = _limits(c)
        is_fixed = c.coupon_type == "fixed_amount"
        rows.append({
            "applied_coupon_id": stable_id("applied_coupon", *key, seen[key]), "applied_order": order,
            "customer_id": customer_id(a.external_customer_id), "external_customer_id": a.external_customer_id,
            "coupon_id": stable_id("coupon", c.code), "coupon_code": c.code, "coupon_name": c.name,
            "coupon_type": c.coupon_type,
            "amount_cents": (a.amount_cents if a.amount_cents is not None else c.amount_cents) if is_fixed else None,
            "amount_currency": (a.amount_currency or c.amount_currency) if is_fixed else None,
            "percentage_rate": None if is_fixed else _text(a.percentage_rate if a.percentage_rate is not None else c.percentage_rate),
            "frequency": a.frequency or c.frequency,
            "frequency_duration": (a.frequency_duration or c.frequency_duration) if (a.frequency or c.frequency) == "recurring" else None,
            "plan_codes_json": _json(plan_codes), "billable_metric_codes_json": _json(metric_codes),
            "created_at": a.created_at, "catalog_location": str(catalog.where[id(a)]),
        })
    return rows


def property_keys(catalog: Catalog) -> list[str]:
    """The event property keys the catalog prices, filters or groups on, or its metrics'
    expressions read: the only ones loaded."""
    keys = {m.field_name for m in catalog.billable_metrics if m.field_name}
    keys |= {name for m in catalog.billable_metrics if m.expression for name in m.parsed_expression.property_names}
    return sorted(keys | set(filter_keys(catalog)) | set(group_keys(catalog)))


def _grouped_buckets(catalog: Catalog):
    """(charge id, bucket key: the filter's id or 'default', its `pricing_group_keys`) of every bucket
    priced per group. As in lago-api (`Fees::ChargeService#grouped_by_keys`), a filter's bucket groups
    on the filter's own keys and the default bucket on the charge's: a filter without keys of its own
    is not grouped, even when its charge is."""
    for effective in effective_plans(catalog):
        for c_index, charge in enumerate(effective.plan.charges):
            if keys := (charge.properties or {}).get("pricing_group_keys"):
                yield charge_id(effective.charge_key, c_index), "default", keys
            for f_index, charge_filter in enumerate(charge.filters):
                if keys := (charge_filter.properties or {}).get("pricing_group_keys"):
                    yield charge_id(effective.charge_key, c_index), charge_filter_id(effective.charge_key, c_index, f_index), keys


def pricing_group_keys(catalog: Catalog) -> list[dict]:
    """One row per bucket priced per group and group key, in the order the charge lists its keys."""
    return [{"charge_id": charge, "charge_filter_key": bucket, "group_key": key, "key_index": index}
            for charge, bucket, keys in _grouped_buckets(catalog) for index, key in enumerate(keys)]


def group_keys(catalog: Catalog) -> list[str]:
    """The property keys some charge or filter prices per group (`pricing_group_keys`)."""
    return sorted({key for _, _, keys in _grouped_buckets(catalog) for key in keys})


def filter_keys(catalog: Catalog) -> list[str]:
    """The property keys the metrics' filters declare: an event's values of these keys (its
    dimensions) decide its charge filter."""
    return sorted({f.key for m in catalog.billable_metrics for f in m.filters})


def webhook_endpoints(catalog: Catalog) -> list[dict]:
    """Webhook endpoints; `event_types_json` null: every type; `created_on` null: no date (every message)."""
    return [{"webhook_endpoint_id": stable_id("webhook_endpoint", e.webhook_url), "webhook_url": e.webhook_url,
             "name": e.name, "signature_algo": e.signature_algo, "event_types_json": _json(e.event_types),
             "created_on": e.created_at.date() if e.created_at else None}
            for e in catalog.webhook_endpoints]


def alerts(catalog: Catalog) -> list[dict]:
    """Usage alerts, one row per alert (key: subscription and code), with their thresholds as JSON
    (`[{code, value, recurring}]`, values as exact decimal text, in the order written)."""
    return [{"alert_id": stable_id("alert", a.external_subscription_id, a.code), "code": a.code, "name": a.name,
             "alert_type": a.alert_type, "external_subscription_id": a.external_subscription_id,
             "billable_metric_code": a.billable_metric_code,
             "thresholds_json": json.dumps([{"code": t.code, "value": _text(t.value), "recurring": t.recurring}
                                            for t in a.thresholds])}
            for a in catalog.alerts]


def decimal_or_none(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


TABLES = {
    "billable_metrics": billable_metrics,
    "plans": plans,
    "usage_thresholds": usage_thresholds,
    "charges": charges,
    "charge_filters": charge_filters,
    "charge_filter_values": charge_filter_values,
    "customers": customers,
    "subscriptions": subscriptions,
    "wallets": wallets,
    "wallet_rules": wallet_rules,
    "taxes": taxes,
    "billing_entities": billing_entities,
    "wallet_transactions": wallet_transactions,
    "credit_notes": credit_notes,
    "coupons": coupons,
    "applied_coupons": applied_coupons,
    "webhook_endpoints": webhook_endpoints,
    "alerts": alerts,
    "pricing_group_keys": pricing_group_keys,
}
