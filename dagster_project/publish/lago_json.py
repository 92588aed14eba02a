"""Lago-shaped JSON (`Invoice`, `CreditNote`, `CustomerUsage`, `Wallet` of Lago's OpenAPI file) from warehouse rows.

Pure functions of plain dicts. Timestamps are derived from the data (an invoice is created at the
midnight UTC of its issuing date), never from the clock, so reruns write the same bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from decimal import Decimal

from dagster_project.billing.grouping import NO_GROUP
from dagster_project.billing.money import currency_exponent, from_cents, stable_id
from dagster_project.billing.taxes import RULE_TEXT, half_up_cents


def _ts(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(0))
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def units_text(value: Decimal | None) -> str:
    """Units as Lago writes them: a plain decimal string, no exponent, no trailing zeros."""
    if value is None:
        return "0.0"
    text = format(Decimal(value).normalize(), "f")
    return text if "." in text else text + ".0"


def rate_number(rate: Decimal | None) -> int | float:
    """A tax rate (percent) for the schema's JSON `number` field: an int when whole, else the float
    whose JSON text is the same decimal (e.g. 25.5). Display only: no amount is computed from it;
    tax amounts come from the exact `Decimal` rate in `billing/taxes.py`."""
    rate = Decimal(rate or 0)
    return int(rate) if rate == rate.to_integral_value() else float(rate)


def customer_object(customer: dict, sequence: int) -> dict:
    """Lago's `CustomerObject` of a `catalog.customers` row: the fields its body may set and we keep."""
    return {
        "lago_id": customer["customer_id"],
        "sequential_id": sequence,
        "slug": f"{sequence:03d}",
        "external_id": customer["external_id"],
        "name": customer["name"],
        "legal_name": customer["legal_name"],
        "legal_number": customer["legal_number"],
        "tax_identification_number": customer["tax_identification_number"],
        "email": customer["email"],
        "address_line1": customer["address_line1"],
        "address_line2": customer["address_line2"],
        "zipcode": customer["zipcode"],
        "city": customer["city"],
        "state": customer["state"],
        "currency": customer["currency"],
        "timezone": customer["timezone"],
        "applicable_timezone": customer["timezone"],
        "country": customer["country"],
        "net_payment_term": customer["net_payment_term"],
        "created_at": _ts(dt.datetime.fromisoformat(customer["created_at"]) if customer["created_at"] else dt.datetime(1970, 1, 1)),
    }


def fee_object(fee: dict, invoice: dict) -> dict:
    """`precise_coupons_amount_cents` (the fee's exact share of its invoice's coupons) is written on the
    fees of invoices with coupons only, so that an invoice without coupons keeps the bytes it had."""
    is_charge = fee["fee_type"] in ("charge", "true_up")
    filter_values = json.loads(fee["filter_values_json"]) if fee.get("filter_values_json") else None
    units = Decimal(fee["units"]) if fee["units"] is not None else Decimal(0)
    precise = Decimal(fee["precise_amount"] or 0)
    coupons = Decimal(fee.get("precise_coupons_amount_cents") or 0)
    body = {
        "lago_id": fee["fee_id"],
        "lago_charge_id": fee["charge_id"],
        "lago_charge_filter_id": fee["charge_filter_key"] if fee["charge_filter_key"] not in (None, "default") else None,
        "lago_invoice_id": invoice["invoice_id"],
        "lago_subscription_id": invoice["subscription_id"],
        "external_subscription_id": invoice["external_subscription_id"],
        "external_customer_id": invoice["external_customer_id"],
        "item": {
            "type": {"true_up": "charge"}.get(fee["fee_type"], fee["fee_type"]),
            "code": fee.get("billable_metric_code") if is_charge else (fee.get("plan_code") or "credit"),
            "name": _fee_name(fee),
            "invoice_display_name": _fee_name(fee),
            "filter_invoice_display_name": fee.get("filter_display_name"),
            "filters": filter_values,
            "lago_item_id": fee["charge_id"] or invoice["invoice_id"],
            "item_type": "BillableMetric" if is_charge else ("WalletTransaction" if fee["fee_type"] == "credit" else "Subscription"),
        },
        "pay_in_advance": False,
        "invoiceable": True,
        "amount_cents": fee["amount_cents"],
        "precise_amount": format(precise.normalize(), "f"),
        "amount_currency": fee["currency"],
        "taxes_amount_cents": fee.get("taxes_amount_cents") or 0,
        "taxes_precise_amount": units_text(Decimal(fee.get("taxes_precise_amount_cents") or 0).scaleb(-currency_exponent(fee["currency"]))),
        "taxes_rate": rate_number(fee.get("taxes_rate")),
        "total_amount_cents": fee["total_amount_cents"],
        "total_amount_currency": fee["currency"],
        "units": units_text(units),
        "total_aggregated_units": units_text(units),
        "precise_unit_amount": units_text((precise / units) if units else Decimal(0)),
        "sub_total_excluding_taxes_amount_cents": fee["amount_cents"] - half_up_cents(coupons),
        "sub_total_excluding_taxes_precise_amount_cents": units_text(precise * 100 - coupons),
        "events_count": fee["events_count"],
        "payment_status": invoice.get("payment_status") or "pending",
        "from_date": _ts(fee.get("charges_from_at")),
        "to_date": _ts(fee["charges_to_at"] - dt.timedelta(seconds=1)) if fee.get("charges_to_at") else None,
        "created_at": _ts(invoice["issuing_date"]),
        "applied_taxes": [
            {**_applied_tax(t, fee["currency"], invoice["issuing_date"]), "lago_fee_id": fee["fee_id"]}
            for t in fee.get("applied_taxes", [])
        ],
    }
    if "precise_coupons_amount_cents" in fee:
        body["precise_coupons_amount_cents"] = units_text(coupons)
    if fee.get("grouped_by"):  # a fee of a bucket priced per group only: the others keep their bytes
        body["item"]["grouped_by"] = json.loads(fee["grouped_by"])
    return body


def _applied_tax(tax: dict, currency: str, day) -> dict:
    return {
        "lago_id": stable_id("applied_tax", tax.get("fee_id") or tax["invoice_id"], tax["tax_code"]),
        "lago_tax_id": stable_id("tax", tax["tax_code"]),
        "tax_name": tax["tax_name"],
        "tax_code": tax["tax_code"],
        "tax_rate": rate_number(tax["tax_rate"]),
        "tax_description": tax["tax_description"],
        "amount_cents": tax["amount_cents"],
        "amount_currency": currency,
        "created_at": _ts(day),
    }


def _fee_name(fee: dict) -> str:
    name = fee.get("charge_display_name")
    if fee["fee_type"] == "true_up":
        return f"{name} - minimum spend true-up"
    if fee["fee_type"] == "commitment":
        return "Minimum commitment true-up"
    if fee["fee_type"] == "subscription":
        return f"Subscription fee ({fee.get('plan_code')})"
    return name or fee["fee_type"]


def net_payment_term(invoice: dict, customer: dict) -> int:
    """The invoice's net payment term in days: the one stored with it when it was issued (the
    customer's own, else the billing entity's, else 0, as in Lago), else the customer's now."""
    days = invoice.get("net_payment_term_days")
    return customer["net_payment_term_days"] if days is None else days


def payment_due_date(invoice: dict, customer: dict) -> dt.date:
    """The issuing date plus the invoice's net payment term in days."""
    return invoice["issuing_date"] + dt.timedelta(days=net_payment_term(invoice, customer))


def invoice_object(invoice: dict, fees: list[dict], customer: dict, customer_sequence: int, period: dict | None,
                   applied_taxes: list[dict] = (), billing_entity: dict | None = None,
                   credit_note_credits: list[dict] = (), coupon_credits: list[dict] = (),
                   progressive_credits: list[dict] = (), applied_usage_thresholds: list[dict] = ()) -> dict:
    """`credit_note_credits`: the credit notes this invoice took (`credit_note_id`, `number`,
    `invoice_number` of the note, `amount_cents`), in the order they were applied;
    `coupon_credits`: what its coupons took (`billing.coupon_credits` rows), before taxes, in the
    order they applied; `progressive_credits`: what it deducted of the period's previous
    progressive_billing invoice (`progressive_billing_invoice_id`, `..._number`, `amount_cents`),
    a credit of item type `invoice` before taxes, as in Lago; `applied_usage_thresholds`: the
    thresholds a progressive_billing invoice was issued for (`billing.applied_usage_thresholds`
    rows; the key is written only when there are some, so other invoices keep their bytes). The
    totals are the invoice's as stored by pricing (`billing.invoicing.with_invoice_totals`)."""
    body = {
        "lago_id": invoice["invoice_id"],
        "billing_entity_code": (billing_entity or {}).get("code"),
        "sequential_id": invoice["sequential_id"],
        "number": invoice["number"],
        "issuing_date": invoice["issuing_date"].isoformat(),
        "payment_due_date": payment_due_date(invoice, customer).isoformat(),
        "net_payment_term": net_payment_term(invoice, customer),
        "invoice_type": invoice["invoice_type"],
        "status": invoice["status"],
        "payment_status": invoice.get("payment_status") or "pending",
        "payment_overdue": False,
        "currency": invoice["currency"],
        "fees_amount_cents": invoice["fees_amount_cents"],
        "coupons_amount_cents": invoice.get("coupons_amount_cents") or 0,
        "credit_notes_amount_cents": invoice["credit_notes_amount_cents"],
        "sub_total_excluding_taxes_amount_cents": invoice["sub_total_excluding_taxes_amount_cents"],
        "taxes_amount_cents": invoice["taxes_amount_cents"],
        "sub_total_including_taxes_amount_cents": invoice["sub_total_including_taxes_amount_cents"],
        "prepaid_credit_amount_cents": invoice["prepaid_credit_amount_cents"],
        "prepaid_granted_credit_amount_cents": invoice["prepaid_granted_credit_amount_cents"],
        "prepaid_purchased_credit_amount_cents": invoice["prepaid_purchased_credit_amount_cents"],
        "progressive_billing_credit_amount_cents": invoice.get("progressive_billing_credit_amount_cents") or 0,
        "total_amount_cents": invoice["total_amount_cents"],
        "version_number": 4,
        "self_billed": False,
        "created_at": _ts(invoice["issuing_date"]),
        "updated_at": _ts(invoice["issuing_date"]),
        "customer": customer_object(customer, customer_sequence),
        "applied_taxes": [
            {**_applied_tax(t, invoice["currency"], invoice["issuing_date"]), "lago_invoice_id": invoice["invoice_id"],
             "fees_amount_cents": t["fees_amount_cents"]}
            for t in applied_taxes
        ],
        "metadata": [
            {"lago_id": stable_id("invoice_metadata", invoice["invoice_id"], "tax_rule"), "key": "tax_rule",
             "value": RULE_TEXT[invoice["tax_rule"]][:140], "created_at": _ts(invoice["issuing_date"])}
        ] if invoice.get("tax_rule") else [],
        "credits": [
            {
                "lago_id": c["coupon_credit_id"],
                "amount_cents": c["amount_cents"],
                "amount_currency": invoice["currency"],
                "before_taxes": True,  # coupons apply to the fees, before taxes
                "item": {"lago_item_id": c["coupon_id"] or c["applied_coupon_id"], "type": "coupon",
                         "code": c["coupon_code"], "name": c["coupon_name"] or c["coupon_code"]},
                "invoice": {"lago_id": invoice["invoice_id"], "payment_status": invoice.get("payment_status") or "pending"},
            }
            for c in coupon_credits
        ] + [
            {
                "lago_id": stable_id("credit", invoice["invoice_id"], c["progressive_billing_invoice_id"]),
                "amount_cents": c["amount_cents"],
                "amount_currency": invoice["currency"],
                "before_taxes": True,  # deducted from the fees, before taxes
                "item": {"lago_item_id": c["progressive_billing_invoice_id"], "type": "invoice",
                         "code": c["progressive_billing_invoice_number"], "name": c["progressive_billing_invoice_number"]},
                "invoice": {"lago_id": invoice["invoice_id"], "payment_status": invoice.get("payment_status") or "pending"},
            }
            for c in progressive_credits
        ] + [
            {
                "lago_id": stable_id("credit", invoice["invoice_id"], c["credit_note_id"]),
                "amount_cents": c["amount_cents"],
                "amount_currency": invoice["currency"],
                "before_taxes": False,  # credit notes apply to the total with taxes
                "item": {"lago_item_id": c["credit_note_id"], "type": "credit_note", "code": c["number"],
                         "name": c["invoice_number"]},
                "invoice": {"lago_id": invoice["invoice_id"], "payment_status": invoice.get("payment_status") or "pending"},
            }
            for c in credit_note_credits
        ],
        "fees": [fee_object(f, invoice) for f in fees],
        "subscriptions": [],
        "billing_periods": [],
    }
    if applied_usage_thresholds:
        body["applied_usage_thresholds"] = [
            {
                "lifetime_usage_amount_cents": t["lifetime_usage_amount_cents"],
                "created_at": _ts(t["created_on"]),
                "usage_threshold": {
                    "lago_id": t["usage_threshold_id"], "threshold_display_name": t["threshold_display_name"],
                    "amount_cents": t["amount_cents"], "recurring": t["is_recurring"],
                    "created_at": _ts(t["created_on"]), "updated_at": _ts(t["created_on"]),
                },
            }
            for t in applied_usage_thresholds
        ]
    if period is not None:
        body["billing_periods"] = [
            {
                "lago_subscription_id": invoice["subscription_id"],
                "external_subscription_id": invoice["external_subscription_id"],
                "lago_plan_id": period["plan_id"],
                "subscription_from_datetime": _ts(period["charges_from_at"]),
                "subscription_to_datetime": _ts(period["charges_to_at"] - dt.timedelta(seconds=1)),
                "charges_from_datetime": _ts(period["charges_from_at"]),
                "charges_to_datetime": _ts(period["charges_to_at"] - dt.timedelta(seconds=1)),
                "invoicing_reason": "progressive_billing" if invoice["invoice_type"] == "progressive_billing"
                else "subscription_periodic",
            }
        ]
    return {"invoice": body}


def credit_note_object(note: dict, items: list[dict], taxes: list[dict], invoice: dict, customer: dict,
                       customer_sequence: int, billing_entity: dict | None = None) -> dict:
    """`{"credit_note": ...}` in Lago's `CreditNote` schema. `items`: the credited fees (fee rows
    as for `fee_object`, each with the credited `credit_amount_cents`); `invoice`: the invoice
    it corrects. Balances are as of the billing date; `updated_at` is the last day the credit
    changed (issued, used or voided), so a rerun writes the same bytes."""
    currency = note["currency"]
    return {
        "credit_note": {
            "lago_id": note["credit_note_id"],
            # required by the schema: a catalog without a billing entity bills as Lago's default one
            "billing_entity_code": (billing_entity or {}).get("code") or "default",
            "sequential_id": note["sequential_id"],
            "number": note["number"],
            "lago_invoice_id": note["invoice_id"],
            "invoice_number": note["invoice_number"],
            "issuing_date": note["issuing_date"].isoformat(),
            "credit_status": note["credit_status"],
            "refund_status": note["refund_status"],
            "reason": note["reason"],
            "description": note["description"],
            "currency": currency,
            "total_amount_cents": note["total_amount_cents"],
            "taxes_amount_cents": note["taxes_amount_cents"],
            "taxes_rate": rate_number(note["taxes_rate"]),
            "sub_total_excluding_taxes_amount_cents": note["sub_total_excluding_taxes_amount_cents"],
            "balance_amount_cents": note["balance_amount_cents"],
            "credit_amount_cents": note["credit_amount_cents"],
            "refund_amount_cents": note["refund_amount_cents"],
            "offset_amount_cents": 0,
            # (absent from a credit_notes table stored before coupons were credited: none then)
            "coupons_adjustment_amount_cents": note.get("coupons_adjustment_amount_cents") or 0,
            "created_at": _ts(note["issuing_date"]),
            "updated_at": _ts(note["updated_on"]),
            "file_url": None,
            "self_billed": False,
            "items": [
                {"lago_id": stable_id("credit_note_item", note["credit_note_id"], item["fee_id"]),
                 "amount_cents": item["credit_amount_cents"], "amount_currency": currency,
                 "fee": fee_object(item, invoice)}
                for item in items
            ],
            "applied_taxes": [
                {"lago_id": stable_id("credit_note_applied_tax", note["credit_note_id"], t["tax_code"]),
                 "lago_credit_note_id": note["credit_note_id"], "lago_tax_id": stable_id("tax", t["tax_code"]),
                 "tax_name": t["tax_name"], "tax_code": t["tax_code"], "tax_rate": rate_number(t["tax_rate"]),
                 "tax_description": t["tax_description"], "base_amount_cents": t["base_amount_cents"],
                 "amount_cents": t["amount_cents"], "amount_currency": currency, "created_at": _ts(note["issuing_date"])}
                for t in taxes
            ],
            "customer": customer_object(customer, customer_sequence),
        }
    }


def credit_fee(invoice: dict) -> dict:
    """The single fee of a `credit` invoice: the paid credits bought."""
    return {
        "fee_id": stable_id("fee", invoice["invoice_id"], "credit"), "fee_type": "credit", "charge_id": None,
        "charge_filter_key": None, "units": Decimal(invoice["paid_credits"]), "events_count": 0,
        "precise_amount": from_cents(invoice["fees_amount_cents"], invoice["currency"]),
        "amount_cents": invoice["fees_amount_cents"], "currency": invoice["currency"],
        "total_amount_cents": invoice["sub_total_including_taxes_amount_cents"],  # (no taxes on credits)
        "charge_display_name": "Prepaid credits",
    }


@functools.cache
def _metric_id(code: str) -> str:
    """A billable metric's `lago_id` (a UUID v5 of its code), made once per code and process."""
    return stable_id("billable_metric", code)


@functools.lru_cache(maxsize=4096)
def _filter_values(text: str) -> dict:
    """A filter's values parsed once per text and process (one object shared by the current-usage
    files that show it: read, never changed)."""
    return json.loads(text)


def _usage_filters(buckets: list[dict]) -> list[dict]:
    """Lago's `filters` of a charge's usage (or of one of its groups'): one entry per filter, the
    default bucket included, summed over the buckets of that filter (one per group, if grouped)."""
    by_filter: dict[str, list[dict]] = {}
    for b in buckets:
        by_filter.setdefault(b["charge_filter_key"], []).append(b)
    filters = []
    for key, items in by_filter.items():
        first, units = items[0], sum((Decimal(b["units"]) for b in items), Decimal(0))
        usage_filter = {
            "values": _filter_values(first["filter_values_json"]) if first.get("filter_values_json") else {},
            "units": units_text(units), "total_aggregated_units": units_text(units),
            "events_count": sum(b["events_count"] for b in items), "amount_cents": sum(b["amount_cents"] for b in items),
        }
        if key != "default":  # the default bucket has no filter name
            usage_filter["invoice_display_name"] = first["filter_display_name"]
        filters.append(usage_filter)
    return filters


def _grouped_usage(buckets: list[dict]) -> list[dict]:
    """Lago's `grouped_usage` of a charge (`V1::Customers::ChargeUsageSerializer#grouped_usage`): one
    entry per group (`grouped_by`), with its totals and its filters."""
    groups: dict[str, list[dict]] = {}
    for b in buckets:
        groups.setdefault(b["grouped_by"], []).append(b)
    usage = []
    for group, items in sorted(groups.items()):
        units = units_text(sum((Decimal(b["units"]) for b in items), Decimal(0)))
        usage.append({
            "amount_cents": sum(b["amount_cents"] for b in items), "events_count": sum(b["events_count"] for b in items),
            "units": units, "total_aggregated_units": units, "grouped_by": json.loads(group),
            "filters": _usage_filters(items),
        })
    return usage


def customer_usage_object(period: dict, buckets: list[dict]) -> dict:
    """`{"customer_usage": ...}` for an open period: one entry per charge, filters inside, and, for a
    charge priced per group (`pricing_group_keys`), its `grouped_usage` (left out otherwise, so that
    usage without groups keeps the bytes it had)."""
    charges: dict[str, dict] = {}
    by_charge: dict[str, list[dict]] = {}
    for b in sorted(buckets, key=lambda b: (b["charge_id"], b["charge_filter_key"], b.get("grouped_by") or NO_GROUP)):
        by_charge.setdefault(b["charge_id"], []).append(b)
        entry = charges.get(b["charge_id"])
        if entry is None:  # (the charge's first bucket)
            entry = charges[b["charge_id"]] = {
                "units": Decimal(0), "events_count": 0, "amount_cents": 0, "amount_currency": period["currency"],
                "charge": {"lago_id": b["charge_id"], "charge_model": b["charge_model"],
                           "invoice_display_name": b["charge_display_name"]},
                "billable_metric": {"lago_id": _metric_id(b["billable_metric_code"]),
                                    "name": b["charge_display_name"], "code": b["billable_metric_code"],
                                    "aggregation_type": b["aggregation_type"]},
            }
        entry["units"] += Decimal(b["units"])
        entry["events_count"] += b["events_count"]
        entry["amount_cents"] += b["amount_cents"]
    for charge_id, entry in charges.items():
        items = by_charge[charge_id]
        entry["filters"] = _usage_filters(items)
        grouped = [b for b in items if (b.get("grouped_by") or NO_GROUP) != NO_GROUP]
        if grouped:
            entry["grouped_usage"] = _grouped_usage(grouped)
    charges_usage = []
    for entry in charges.values():
        entry["units"] = units_text(entry["units"])
        entry["total_aggregated_units"] = entry["units"]
        charges_usage.append(entry)
    amount = sum(c["amount_cents"] for c in charges_usage)
    taxes = sum(b.get("taxes_amount_cents") or 0 for b in buckets)
    return {
        "customer_usage": {
            "from_datetime": _ts(period["charges_from_at"]),
            "to_datetime": _ts(period["charges_to_at"] - dt.timedelta(seconds=1)),
            "issuing_date": period["billing_day"].isoformat(),
            "lago_invoice_id": None,
            "currency": period["currency"],
            "amount_cents": amount,
            "taxes_amount_cents": taxes,
            "total_amount_cents": amount + taxes,
            "charges_usage": charges_usage,
        }
    }


def wallet_limitations(wallet: dict) -> dict:
    """A limited wallet's `applies_to` (Lago's `fee_types` and `billable_metric_codes`), from its
    `catalog.wallets` row; nothing for a wallet without limitations, whose JSON stays as it was."""
    return applies_to_object(json.loads(wallet.get("fee_types_json") or "[]"),
                             json.loads(wallet.get("billable_metric_codes_json") or "[]"))


def applies_to_object(fee_types: list[str], metric_codes: list[str]) -> dict:
    """`{"applies_to": ...}` of a wallet limited to those fee types or metrics; `{}` when it is not."""
    if not fee_types and not metric_codes:
        return {}
    return {"applies_to": {"fee_types": fee_types, "billable_metric_codes": metric_codes}}


def transaction_metadata(metadata_json: str | None) -> list[dict]:
    """A wallet transaction's (or top-up rule's) `metadata`: Lago's list of `{key, value}`, as the
    catalog gave it; `[]` when none was given."""
    return json.loads(metadata_json) if metadata_json else []


# The ledger's sources as Lago's `source` (how the credits came: `manual`, `interval` or `threshold`;
# Lago records its outbound transactions as `manual` too) and `transaction_status`.
_LAGO_SOURCE = {"threshold_top_up": "threshold", "interval_top_up": "interval"}
# Lago's default for a transaction without its own payment method (its column default; Lago also
# writes `payment_method_id: null`, which the OpenAPI file's `string` does not allow, so it is left out).
DEFAULT_PAYMENT_METHOD = {"payment_method_type": "provider"}


def wallet_transaction_object(transaction: dict, wallet: dict) -> dict:
    """One `billing.wallet_transactions` row (the ledger) as Lago's `WalletTransactionObject`. `transaction_status`:
    `purchased` (paid credits in), `granted` (free credits in), `voided` (credits voided out),
    `invoiced` (credits that paid an invoice). Created at the midnight UTC of its day, settled at
    the midnight of the day it settled (paid credits waiting for a payment: the day they were paid).
    `wallet`: its `catalog.wallets` row (currency, priority)."""
    inbound = transaction["transaction_type"] == "inbound"
    if inbound:
        status = "purchased" if transaction["paid_amount_cents"] > 0 else "granted"
    else:
        status = "voided" if transaction["source"] == "void" else "invoiced"
    cents = transaction["granted_amount_cents"] + transaction["paid_amount_cents"]
    settled = transaction["status"] == "settled"
    return {
        "lago_id": transaction["wallet_transaction_id"],
        "lago_wallet_id": transaction["wallet_id"],
        "lago_invoice_id": transaction["invoice_id"],
        "lago_credit_note_id": None,
        "lago_voided_invoice_id": None,
        "status": transaction["status"],
        "source": _LAGO_SOURCE.get(transaction["source"], "manual"),
        "transaction_status": status,
        "transaction_type": transaction["transaction_type"],
        "amount": str(from_cents(cents, wallet["currency"])),
        "credit_amount": transaction["credit_amount"],
        "remaining_amount_cents": None,
        "remaining_credit_amount": None,
        "priority": wallet["priority"],
        # Paid credits that waited for their invoice's payment: pending, or settled later (`settled_on`).
        "invoice_requires_successful_payment": transaction["status"] == "pending" or transaction["settled_on"] is not None,
        "settled_at": _ts(transaction["settled_on"] or transaction["transaction_date"]) if settled else None,
        "failed_at": None,
        "created_at": _ts(transaction["transaction_date"]),
        "metadata": transaction_metadata(transaction.get("metadata_json")),
        "name": None,
        "purchase_order_number": None,
        "payment_method": dict(DEFAULT_PAYMENT_METHOD),
    }


def wallet_object(wallet: dict, rules: list[dict], balance: dict, consumed_credits: Decimal, credits_of) -> dict:
    """`{"wallet": ...}`; `rules`: the wallet's recurring top-up rules (`catalog.wallet_rules` rows,
    in order)."""
    rate = Decimal(wallet["rate_amount"])
    ongoing_usage = balance["ongoing_usage_balance_cents"]
    balance_cents = balance["balance_cents"]
    ongoing_balance = balance_cents - ongoing_usage
    return {
        "wallet": {
            "lago_id": wallet["wallet_id"],
            "lago_customer_id": wallet["customer_id"],
            "external_customer_id": wallet["external_customer_id"],
            "status": balance["status"],
            "currency": wallet["currency"],
            "name": wallet["name"],
            "code": wallet["code"],
            "priority": wallet["priority"],
            "rate_amount": str(rate),
            "credits_balance": str(credits_of(balance_cents)),
            "balance": str(from_cents(balance_cents, wallet["currency"])),
            "balance_cents": balance_cents,
            "consumed_credits": str(consumed_credits),
            "created_at": _ts(wallet["created_at"] or dt.datetime(1970, 1, 1)),
            "expiration_at": _ts(wallet["expiration_at"]),
            "terminated_at": _ts(wallet["expiration_at"]) if balance["status"] == "terminated" else None,
            "last_balance_sync_at": _ts(balance["last_balance_sync_on"]),
            "invoice_requires_successful_payment": wallet["invoice_requires_successful_payment"],
            "ongoing_balance_cents": ongoing_balance,
            "ongoing_usage_balance_cents": ongoing_usage,
            "credits_ongoing_balance": str(credits_of(ongoing_balance)),
            "credits_ongoing_usage_balance": str(credits_of(ongoing_usage)),
            **wallet_limitations(wallet),
            "recurring_transaction_rules": [
                {
                    "lago_id": stable_id("recurring_rule", wallet["wallet_id"], i),
                    "trigger": r["trigger"], "method": r["method"],
                    # The schema requires both; Lago stores `weekly` (its column default) and
                    # "0.0" on rules that do not use them.
                    "interval": r["interval"] or "weekly",
                    "threshold_credits": r["threshold_credits"] or "0.0",
                    "target_ongoing_balance": r["target_ongoing_balance"],
                    "paid_credits": r["paid_credits"] or "0.0", "granted_credits": r["granted_credits"] or "0.0",
                    "started_at": None, "expiration_at": None, "status": "active", "created_at": _ts(wallet["created_at"] or dt.datetime(1970, 1, 1)),
                    "invoice_requires_successful_payment": wallet["invoice_requires_successful_payment"],
                    "transaction_metadata": transaction_metadata(r.get("transaction_metadata_json")),
                    "transaction_name": None, "ignore_paid_top_up_limits": False,
                    "grants_target_top_up": r["grants_target_top_up"] if r["method"] == "target" else None,
                }
                for i, r in enumerate(rules)
            ],
        }
    }
