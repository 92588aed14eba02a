"""`bill()`, the pricing core, on inputs written by hand: one customer, one monthly subscription in
arrears, a package charge and a standard charge, a 10% tax, and a wallet of granted credits.

Every figure is worked by hand below. The rounding rule is the house's: half-up (ties away from
zero) to the currency's exponent, once per fee; the tax of an invoice is, per tax, the sum of its
fees' unrounded taxes rounded half-up once.

The month (the same for every test): October 2026 in UTC, 31 days, billed on 2026-11-01 with no
grace, so the invoice is finalized by a run through any later day, and paid by the wallet the day
after its finalization day (2026-11-02).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl
import pytest

from dagster_project.billing.charge_models import MONEY
from dagster_project.billing.invoicing import INVOICE_TOTAL_COLUMNS, bill, with_invoice_totals
from dagster_project.billing.taxes import Tax, TaxBook

D = dt.date
CUSTOMER, SUBSCRIPTION, PLAN, PERIOD = "cus-1", "sub-1", "plan-1", "period-2026-10"
PACKAGE_CHARGE, STANDARD_CHARGE = "charge-package", "charge-standard"

CHARGE_SCHEMA = {
    "charge_id": pl.String, "plan_id": pl.String, "plan_code": pl.String, "charge_index": pl.Int64,
    "billable_metric_id": pl.String, "billable_metric_code": pl.String, "charge_model": pl.String,
    "is_pay_in_advance": pl.Boolean, "invoice_display_name": pl.String, "min_amount_cents": pl.Int64,
    "rounding_function": pl.String, "rounding_precision": pl.Int64, "properties_json": pl.String,
    "tax_codes_json": pl.String,
}
FILTER_SCHEMA = {
    "charge_filter_id": pl.String, "charge_id": pl.String, "filter_index": pl.Int64, "invoice_display_name": pl.String,
    "key_count": pl.Int64, "value_count": pl.Int64, "filter_values_json": pl.String, "properties_json": pl.String,
}
USAGE_SCHEMA = {
    "usage_daily_id": pl.String, "subscription_id": pl.String, "customer_id": pl.String,
    "billing_period_id": pl.String, "charge_id": pl.String, "charge_filter_id": pl.String, "arrival_date": pl.Date,
    "aggregation_type": pl.String, "is_recurring": pl.Boolean, "invoice_finalized_on": pl.Date, "is_late": pl.Boolean,
    "units": MONEY, "value_sum": MONEY, "max_value": MONEY, "latest_at": pl.Datetime("us"), "latest_value": MONEY,
    "events_count": pl.Int64,
}
PERIOD_SCHEMA = {
    "billing_period_id": pl.String, "subscription_id": pl.String, "external_subscription_id": pl.String,
    "period_start_date": pl.Date, "period_end_date": pl.Date, "period_start_at": pl.Datetime("us"),
    "period_end_at": pl.Datetime("us"), "charges_from_at": pl.Datetime("us"), "charges_to_at": pl.Datetime("us"),
    "days_in_period": pl.Int64, "billed_days": pl.Int64, "fee_days": pl.Int64, "billing_day": pl.Date,
    "invoice_finalized_on": pl.Date, "period_index": pl.Int64, "customer_id": pl.String, "currency": pl.String,
    "plan_id": pl.String, "plan_code": pl.String, "is_plan_pay_in_advance": pl.Boolean,
    "amount_cents_plan": pl.Int64, "minimum_commitment_cents": pl.Int64,
}
CUSTOMER_SCHEMA = {
    "customer_id": pl.String, "external_id": pl.String, "name": pl.String, "currency": pl.String,
    "timezone": pl.String, "country": pl.String, "tax_identification_number": pl.String,
    "tax_codes_json": pl.String, "invoice_grace_period_days": pl.Int64, "net_payment_term_days": pl.Int64,
    "created_at": pl.String,
}
WALLET_SCHEMA = {
    "wallet_id": pl.String, "wallet_key": pl.String, "creation_order": pl.Int64, "customer_id": pl.String,
    "external_customer_id": pl.String, "name": pl.String, "code": pl.String, "currency": pl.String,
    "priority": pl.Int64, "rate_amount": pl.String, "paid_credits": pl.String, "granted_credits": pl.String,
    "created_at": pl.Datetime("us"), "expiration_at": pl.Datetime("us"),
    "invoice_requires_successful_payment": pl.Boolean,
}
VAT_10 = Tax("vat_10", "VAT 10%", Decimal(10))


def charge(charge_id: str, model: str, properties: dict, index: int) -> dict:
    return {"charge_id": charge_id, "plan_id": PLAN, "plan_code": "plan", "charge_index": index,
            "billable_metric_id": "metric-tokens", "billable_metric_code": "tokens", "charge_model": model,
            "is_pay_in_advance": False, "invoice_display_name": charge_id, "min_amount_cents": None,
            "rounding_function": None, "rounding_precision": None, "properties_json": json.dumps(properties),
            "tax_codes_json": "[]"}


def usage(charge_id: str, tokens: int, arrival: dt.date, events: int = 1) -> dict:
    return {"usage_daily_id": f"{charge_id}-{arrival}", "subscription_id": SUBSCRIPTION, "customer_id": CUSTOMER,
            "billing_period_id": PERIOD, "charge_id": charge_id, "charge_filter_id": None, "arrival_date": arrival,
            "aggregation_type": "sum_agg", "is_recurring": False, "invoice_finalized_on": D(2026, 11, 1),
            "is_late": arrival > D(2026, 11, 1), "units": Decimal(tokens), "value_sum": Decimal(tokens),
            "max_value": Decimal(tokens), "latest_at": dt.datetime.combine(arrival, dt.time(12)),
            "latest_value": Decimal(tokens), "events_count": events}


def october(currency: str = "USD", plan_cents: int = 1000) -> pl.DataFrame:
    """The one billing period: October 2026 (31 days), billed and finalized on 2026-11-01."""
    start, end = dt.datetime(2026, 10, 1), dt.datetime(2026, 11, 1)
    return pl.DataFrame([{
        "billing_period_id": PERIOD, "subscription_id": SUBSCRIPTION, "external_subscription_id": "sub_ext",
        "period_start_date": start.date(), "period_end_date": end.date(), "period_start_at": start,
        "period_end_at": end, "charges_from_at": start, "charges_to_at": end, "days_in_period": 31,
        "billed_days": 31, "fee_days": 31, "billing_day": end.date(), "invoice_finalized_on": end.date(),
        "period_index": 0, "customer_id": CUSTOMER, "currency": currency, "plan_id": PLAN, "plan_code": "plan",
        "is_plan_pay_in_advance": False, "amount_cents_plan": plan_cents, "minimum_commitment_cents": None,
    }], schema=PERIOD_SCHEMA)


def customers(currency: str = "USD") -> pl.DataFrame:
    return pl.DataFrame([{
        "customer_id": CUSTOMER, "external_id": "acme", "name": "Acme", "currency": currency, "timezone": "UTC",
        "country": "FR", "tax_identification_number": None, "tax_codes_json": '["vat_10"]',
        "invoice_grace_period_days": 0, "net_payment_term_days": 30, "created_at": None,
    }], schema=CUSTOMER_SCHEMA)


def wallet(granted_credits: str) -> pl.DataFrame:
    """Granted (free) credits at 1 credit = 1.00 USD, from the start of October."""
    return pl.DataFrame([{
        "wallet_id": "wallet-1", "wallet_key": "acme/credits", "creation_order": 0, "customer_id": CUSTOMER,
        "external_customer_id": "acme", "name": "Credits", "code": "credits", "currency": "USD", "priority": 50,
        "rate_amount": "1", "paid_credits": "0", "granted_credits": granted_credits,
        "created_at": dt.datetime(2026, 10, 1), "expiration_at": None,
        "invoice_requires_successful_payment": False,
    }], schema=WALLET_SCHEMA)


def customer_tax_book(tax: Tax | None = VAT_10) -> TaxBook:
    """The customer's own tax (customer level): every fee of its invoices takes it."""
    codes = (tax.code,) if tax else ()
    return TaxBook(taxes={tax.code: tax} if tax else {}, charge_codes={}, plan_codes={},
                   customer_codes={CUSTOMER: codes}, customer_places={CUSTOMER: ("FR", None)})


# The USD scenario's charges: a package of 1,000,000 tokens at 0.85 USD, and a standard price of
# 0.000002 USD a token.
USD_CHARGES = pl.DataFrame([
    charge(PACKAGE_CHARGE, "package", {"amount": "0.85", "package_size": 1000000, "free_units": 0}, 0),
    charge(STANDARD_CHARGE, "standard", {"amount": "0.000002"}, 1),
], schema=CHARGE_SCHEMA)
# Package: 2,000,001 tokens on Oct 5 + 500,000 on Oct 20 = 2,500,001 tokens -> ceil(2.500001) = 3
#   packages * 0.85 = 2.55 USD = 255 cents.
# Standard: 1,222,500 tokens (Oct 31) * 0.000002 = 2.445 USD = 244.5 cents -> half-up 245 cents
#   (half-even would give 244).
# One more package-charge event arrives on Nov 2, after the invoice's finalization day: late usage.
USD_USAGE = pl.DataFrame([
    usage(PACKAGE_CHARGE, 2_000_001, D(2026, 10, 5), events=3),
    usage(PACKAGE_CHARGE, 500_000, D(2026, 10, 20), events=2),
    usage(STANDARD_CHARGE, 1_222_500, D(2026, 10, 31), events=4),
    usage(PACKAGE_CHARGE, 600_000, D(2026, 11, 2), events=1),
], schema=USAGE_SCHEMA)


def bill_usd(through: dt.date, *, wallets: pl.DataFrame | None = None, tax: Tax | None = VAT_10):
    return bill(
        through=through, usage=USD_USAGE, periods=october(), charges=USD_CHARGES,
        filters=pl.DataFrame(schema=FILTER_SCHEMA), customers=customers(),
        wallets=wallets if wallets is not None else wallet("0").clear(), customer_sequences={CUSTOMER: 1},
        number_prefix="MTH", tax_book=customer_tax_book(tax),
    )


def fee_cents(result) -> dict[str, tuple[int, int]]:
    """(amount_cents, taxes_amount_cents) per charge, or per fee type for the others."""
    return {f["charge_id"] or f["fee_type"]: (f["amount_cents"], f["taxes_amount_cents"])
            for f in result.fees.iter_rows(named=True)}


def the_invoice(result) -> dict:
    (invoice,) = result.invoices.filter(pl.col("invoice_type") == "subscription").to_dicts()
    return invoice


def test_a_package_rounds_up_to_whole_packages_and_a_standard_price_rounds_half_up_to_the_cent():
    result = bill_usd(D(2026, 11, 2))
    fees = fee_cents(result)
    # package: ceil(2,500,001 / 1,000,000) = 3 packages * 0.85 USD = 2.55 USD -> 255 cents; the late
    # 600,000 tokens (arrived Nov 2) are not on it (they would make 3,100,001 tokens: 4 packages)
    # standard: 1,222,500 * 0.000002 = 2.445 USD -> half-up to 2 decimals: 2.45 USD = 245 cents
    # subscription: 1000 cents * 31 fee days / 31 days = 1000 cents
    assert {k: v[0] for k, v in fees.items()} == {PACKAGE_CHARGE: 255, STANDARD_CHARGE: 245, "subscription": 1000}
    by_charge = {f["charge_id"]: f for f in result.fees.iter_rows(named=True)}
    assert by_charge[STANDARD_CHARGE]["precise_amount"] == Decimal("2.445")  # the unrounded figure is kept
    assert by_charge[PACKAGE_CHARGE]["units"] == Decimal(2_500_001)
    assert by_charge[PACKAGE_CHARGE]["events_count"] == 5


def test_each_fee_shows_its_tax_rounded_half_up_and_the_invoice_rounds_the_sum_once():
    result = bill_usd(D(2026, 11, 2))
    # 10% of each fee, unrounded: 1000 -> 100.0, 255 -> 25.5, 245 -> 24.5 cents.
    # Each fee shows its own tax half-up: 100, 26, 25 (which add up to 151).
    assert {k: v[1] for k, v in fee_cents(result).items()} == {"subscription": 100, PACKAGE_CHARGE: 26, STANDARD_CHARGE: 25}
    # and its total with its own rounded tax: 1000 + 100, 255 + 26, 245 + 25
    totals = {f["charge_id"] or f["fee_type"]: f["total_amount_cents"] for f in result.fees.iter_rows(named=True)}
    assert totals == {"subscription": 1100, PACKAGE_CHARGE: 281, STANDARD_CHARGE: 270}
    # The invoice's tax is the sum of the unrounded taxes, rounded once: 100.0 + 25.5 + 24.5 = 150.0 -> 150.
    (applied,) = result.invoice_taxes.to_dicts()
    assert (applied["tax_code"], applied["fees_amount_cents"], applied["amount_cents"]) == ("vat_10", 1500, 150)
    invoice = the_invoice(result)
    assert (invoice["fees_amount_cents"], invoice["taxes_amount_cents"]) == (1000 + 255 + 245, 150)


def test_the_invoice_is_numbered_finalized_and_due_in_full_without_credits():
    invoice = the_invoice(bill_usd(D(2026, 11, 2)))
    assert invoice["total_amount_cents"] == 1650  # 1500 + 150, nothing deducted
    # finalized: the run bills through a day after its finalization day (2026-11-01)
    assert (invoice["number"], invoice["status"], invoice["issuing_date"]) == ("MTH-001-001", "finalized", D(2026, 11, 1))
    assert invoice["prepaid_granted_credit_amount_cents"] == invoice["prepaid_purchased_credit_amount_cents"] == 0
    assert invoice["credit_notes_amount_cents"] == 0
    # nothing paid it: 1500 + 150 = 1650 cents are due
    assert invoice["payment_status"] == "pending"


def test_an_invoice_billed_on_its_finalization_day_is_still_a_draft():
    invoice = the_invoice(bill_usd(D(2026, 11, 1)))
    # the folder of Nov 1 may still receive files: the invoice waits, under a draft number
    assert (invoice["status"], invoice["number"]) == ("draft", "MTH-001-DRAFT")
    assert (invoice["fees_amount_cents"], invoice["taxes_amount_cents"]) == (1500, 150)


def test_granted_credits_pay_the_invoice_the_day_after_its_finalization_after_taxes():
    result = bill_usd(D(2026, 11, 2), wallets=wallet("5"))
    invoice = the_invoice(result)
    # 5 granted credits * 1.00 USD = 500 cents, all of it taken by the 1650 cents due (taxes included):
    # 1650 - 500 = 1150 cents left to pay.
    assert invoice["prepaid_granted_credit_amount_cents"] == 500
    assert invoice["prepaid_purchased_credit_amount_cents"] == 0
    # the totals, stored with the invoice: 1500 excluding taxes, 1500 + 150 = 1650 including them,
    # 500 of prepaid credits, 1650 - 0 (credit notes) - 500 = 1150 due
    assert {c: invoice[c] for c in INVOICE_TOTAL_COLUMNS} == {
        "sub_total_excluding_taxes_amount_cents": 1500, "sub_total_including_taxes_amount_cents": 1650,
        "prepaid_credit_amount_cents": 500, "total_amount_cents": 1150}
    (balance,) = result.wallet_balances.to_dicts()
    assert balance["balance_cents"] == 0
    # granted credits bought nothing: no credit invoice
    assert result.invoices.filter(pl.col("invoice_type") == "credit").is_empty()


def test_credits_beyond_the_total_stay_in_the_wallet():
    result = bill_usd(D(2026, 11, 2), wallets=wallet("20"))
    # 20 credits = 2000 cents; the invoice takes its 1650 cents, 2000 - 1650 = 350 cents stay.
    assert the_invoice(result)["prepaid_granted_credit_amount_cents"] == 1650
    assert result.wallet_balances["balance_cents"].to_list() == [350]
    assert the_invoice(result)["payment_status"] == "succeeded"  # nothing left to collect


def test_usage_arrived_after_the_finalization_day_is_late_usage_with_what_it_would_have_added():
    result = bill_usd(D(2026, 11, 2))
    (late,) = result.late_usage.to_dicts()
    # With the 600,000 late tokens the package charge has 3,100,001 tokens: 4 packages = 3.40 USD,
    # 340 cents instead of the 255 billed: 85 cents more.
    assert (late["charge_id"], late["late_units"], late["late_events_count"], late["late_amount_cents"]) == (
        PACKAGE_CHARGE, Decimal(600_000), 1, 85)


def test_without_a_tax_the_invoice_is_its_fees():
    invoice = the_invoice(bill_usd(D(2026, 11, 2), tax=None))
    assert (invoice["fees_amount_cents"], invoice["taxes_amount_cents"]) == (1500, 0)


@pytest.mark.parametrize(
    ("currency", "price", "tokens", "expected_minor_units"),
    [
        # JPY has no minor unit: 12,500 tokens * 0.0002 JPY = 2.5 JPY -> half-up to 0 decimals: 3 yen
        ("JPY", "0.0002", 12_500, 3),
        # KWD has three decimals: 12,345 tokens * 0.0001 KWD = 1.2345 KWD -> half-up: 1.235 KWD = 1235 fils
        ("KWD", "0.0001", 12_345, 1235),
        # USD: 12,345 tokens * 0.0001 USD = 1.2345 USD -> half-up to 2 decimals: 1.23 USD = 123 cents
        ("USD", "0.0001", 12_345, 123),
    ],
)
def test_a_fee_is_rounded_half_up_to_its_currency_exponent(currency, price, tokens, expected_minor_units):
    charges = pl.DataFrame([charge(STANDARD_CHARGE, "standard", {"amount": price}, 0)], schema=CHARGE_SCHEMA)
    result = bill(
        through=D(2026, 11, 2), usage=pl.DataFrame([usage(STANDARD_CHARGE, tokens, D(2026, 10, 9))], schema=USAGE_SCHEMA),
        periods=october(currency, plan_cents=0), charges=charges, filters=pl.DataFrame(schema=FILTER_SCHEMA),
        customers=customers(currency), wallets=wallet("0").clear(), customer_sequences={CUSTOMER: 1},
        number_prefix="MTH", tax_book=customer_tax_book(None),
    )
    assert fee_cents(result) == {STANDARD_CHARGE: (expected_minor_units, 0)}
    assert the_invoice(result)["currency"] == currency


def test_an_invoice_stored_without_its_totals_gets_them_from_its_stored_parts():
    # a row kept from a warehouse billed before the totals were stored: its new columns read 0
    stored = pl.DataFrame([{
        "invoice_id": "old", "fees_amount_cents": 2000, "taxes_amount_cents": 400, "credit_notes_amount_cents": 300,
        "prepaid_granted_credit_amount_cents": 250, "prepaid_purchased_credit_amount_cents": 50,
        "sub_total_excluding_taxes_amount_cents": 0, "sub_total_including_taxes_amount_cents": 0,
        "prepaid_credit_amount_cents": 0, "total_amount_cents": 0,
    }])
    (row,) = with_invoice_totals(stored).to_dicts()
    # 2000 + 400 = 2400 with taxes; credits 250 + 50 = 300; 2400 - 300 (credit note) - 300 = 1800 due
    assert {c: row[c] for c in INVOICE_TOTAL_COLUMNS} == {
        "sub_total_excluding_taxes_amount_cents": 2000, "sub_total_including_taxes_amount_cents": 2400,
        "prepaid_credit_amount_cents": 300, "total_amount_cents": 1800}


def applied_coupon(amount_cents: int, applied_on: dt.datetime = dt.datetime(2026, 10, 5)) -> pl.DataFrame:
    """A fixed coupon applied once to the customer (a `catalog.applied_coupons` row)."""
    from dagster_project.store.catalog_tables import EMPTY_SCHEMAS

    return pl.DataFrame([{
        "applied_coupon_id": "ac-1", "applied_order": 0, "customer_id": CUSTOMER, "external_customer_id": "acme",
        "coupon_id": "coupon-1", "coupon_code": "welcome", "coupon_name": "Welcome", "coupon_type": "fixed_amount",
        "amount_cents": amount_cents, "amount_currency": "USD", "percentage_rate": None, "frequency": "once",
        "frequency_duration": None, "plan_codes_json": "[]", "billable_metric_codes_json": "[]",
        "created_at": applied_on, "catalog_location": "coupons.json, body 1",
    }], schema=EMPTY_SCHEMAS["applied_coupons"])


def bill_usd_with_coupon(through: dt.date, coupon: pl.DataFrame, **kwargs):
    return bill(
        through=through, usage=USD_USAGE, periods=october(), charges=USD_CHARGES,
        filters=pl.DataFrame(schema=FILTER_SCHEMA), customers=customers(),
        wallets=kwargs.pop("wallets", wallet("0").clear()), customer_sequences={CUSTOMER: 1},
        number_prefix="MTH", tax_book=customer_tax_book(), applied_coupons=coupon, **kwargs,
    )


def test_a_coupon_comes_off_the_fees_before_the_taxes_and_the_wallet_pays_what_is_left():
    result = bill_usd_with_coupon(D(2026, 11, 2), applied_coupon(300), wallets=wallet("5"))
    invoice = the_invoice(result)
    # fees 1500; the coupon's 3.00, shared in proportion: 1000 x 300/1500 = 200, 255 x 300/1500 = 51,
    # 245 x 300/1500 = 49. VAT 10% on 800, 204 and 196: 80.0 + 20.4 + 19.6 = 120.0 -> 120 (not 150).
    # 1500 - 300 + 120 = 1320; the wallet's 5.00 pays 500 of it: 820 due.
    assert (invoice["fees_amount_cents"], invoice["coupons_amount_cents"], invoice["sub_total_excluding_taxes_amount_cents"],
            invoice["taxes_amount_cents"], invoice["sub_total_including_taxes_amount_cents"],
            invoice["prepaid_credit_amount_cents"], invoice["total_amount_cents"]) == (1500, 300, 1200, 120, 1320, 500, 820)
    assert {k: v[1] for k, v in fee_cents(result).items()} == {"subscription": 80, PACKAGE_CHARGE: 20, STANDARD_CHARGE: 20}
    (applied,) = result.invoice_taxes.to_dicts()
    assert (applied["fees_amount_cents"], applied["amount_cents"]) == (1200, 120)
    assert result.coupon_credits.select("applied_coupon_id", "amount_cents").rows() == [("ac-1", 300)]
    assert sorted(result.fee_coupons["precise_amount_cents"].to_list()) == [Decimal(49), Decimal(51), Decimal(200)]


def test_a_draft_takes_no_coupon_and_a_coupon_larger_than_the_invoice_keeps_its_remainder():
    # through Nov 1 the invoice is a draft: no coupon (as in Lago, coupons apply when it is finalized)
    draft = the_invoice(bill_usd_with_coupon(D(2026, 11, 1), applied_coupon(2000)))
    assert (draft["status"], draft["coupons_amount_cents"], draft["taxes_amount_cents"]) == ("draft", 0, 150)
    # finalized: 20.00 against fees of 15.00: 15.00 taken, no tax, nothing due; 5.00 left for the next invoices
    result = bill_usd_with_coupon(D(2026, 11, 2), applied_coupon(2000))
    invoice = the_invoice(result)
    assert (invoice["coupons_amount_cents"], invoice["taxes_amount_cents"], invoice["total_amount_cents"]) == (1500, 0, 0)
    assert result.applied_coupons.select("status", "amount_cents_remaining", "consumed_amount_cents").rows() == [
        ("active", 500, 1500)]


def test_a_coupon_applied_after_the_invoice_was_issued_takes_nothing_from_it():
    # applied Nov 2, the day after the invoice's issue (Nov 1): the invoice keeps its 1650
    invoice = the_invoice(bill_usd_with_coupon(D(2026, 11, 3), applied_coupon(300, dt.datetime(2026, 11, 2))))
    assert (invoice["coupons_amount_cents"], invoice["total_amount_cents"]) == (0, 1650)


def thresholds(*rows: tuple[int, bool]) -> pl.DataFrame:
    return pl.DataFrame([{"usage_threshold_id": f"t{i}", "plan_id": PLAN, "plan_code": "plan", "threshold_index": i,
                          "amount_cents": cents, "is_recurring": recurring, "threshold_display_name": None}
                         for i, (cents, recurring) in enumerate(rows)])


def test_progressive_invoices_bill_the_usage_so_far_and_each_later_invoice_deducts_it_fee_by_fee_before_taxes():
    # Thresholds 2.00 fixed and 2.00 recurring, on the USD usage (10% VAT):
    # Oct 5: package 2,000,001 tokens = 3 packages = 2.55 >= 2.00: invoice 1, fees 255, tax 25.5 -> 26, due 281.
    # Oct 20: 2,500,001 tokens, still 3 packages: 2.55, nothing new.
    # Oct 31: + standard 2.45 = 5.00; billed 2.55 >= 2.00, so the recurring one: (500 - 255) + 255 % 200
    #   = 245 + 55 = 300 >= 200: invoice 2, fees 255 + 245 = 500, less invoice 1's package fee 255 (fee
    #   by fee): sub-total 245; tax on the package 0, on the standard 24.5 -> 25; due 270.
    # Nov 1 (October): 1000 + 255 + 245 = 1500, less invoice 2's fees 255 + 245 = 500: sub-total 1000;
    #   tax 10% of the subscription's 1000 = 100 (the charges' bases are 0); due 1100.
    # In all: 255 + 245 + 1000 = 1500 before taxes, the month's fees, billed once.
    result = bill(
        through=D(2026, 11, 2), usage=USD_USAGE, periods=october(), charges=USD_CHARGES,
        filters=pl.DataFrame(schema=FILTER_SCHEMA), customers=customers(), wallets=wallet("0").clear(),
        customer_sequences={CUSTOMER: 1}, number_prefix="MTH", tax_book=customer_tax_book(),
        usage_thresholds=thresholds((200, False), (200, True)),
    )
    invoices = [(i["number"], i["invoice_type"], i["issuing_date"], i["fees_amount_cents"],
                 i["progressive_billing_credit_amount_cents"], i["sub_total_excluding_taxes_amount_cents"],
                 i["taxes_amount_cents"], i["total_amount_cents"]) for i in result.invoices.sort("number").iter_rows(named=True)]
    assert invoices == [
        ("MTH-001-001", "progressive_billing", D(2026, 10, 5), 255, 0, 255, 26, 281),
        ("MTH-001-002", "progressive_billing", D(2026, 10, 31), 500, 255, 245, 25, 270),
        ("MTH-001-003", "subscription", D(2026, 11, 1), 1500, 500, 1000, 100, 1100),
    ]
    credits = sorted((r["amount_cents"], r["fee_id"] in set(result.fees.filter(pl.col("charge_id") == PACKAGE_CHARGE)["fee_id"]))
                     for r in result.progressive_billing_credits.iter_rows(named=True))
    assert credits == [(245, False), (255, True), (255, True)]
    applied = [(r["usage_threshold_id"], r["lifetime_usage_amount_cents"], r["created_on"])
               for r in result.applied_usage_thresholds.sort("created_on").iter_rows(named=True)]
    assert applied == [("t0", 255, D(2026, 10, 5)), ("t1", 500, D(2026, 10, 31))]


def test_without_thresholds_no_progressive_invoice_and_the_lifetime_usage_is_still_kept():
    result = bill_usd(D(2026, 10, 20))
    assert result.invoices.is_empty() and result.progressive_billing_credits.is_empty()
    # October open on Oct 20: package 2,500,001 tokens = 3 packages = 2.55, nothing invoiced before
    assert [(r["invoiced_usage_amount_cents"], r["current_usage_amount_cents"], r["next_threshold_amount_cents"])
            for r in result.lifetime_usage.iter_rows(named=True)] == [(0, 255, None)]


def test_thresholds_added_after_a_period_was_finalized_issue_nothing_for_that_period():
    # October's invoice was finalized by an earlier run (1650 with taxes, no threshold then): the
    # thresholds now in the catalog would have issued invoices on Oct 5 and Oct 31; they issue none,
    # and October's invoice deducts nothing.
    from dagster_project.billing.money import stable_id

    october_invoice = stable_id("invoice", PERIOD)
    result = bill(
        through=D(2026, 11, 2), usage=USD_USAGE, periods=october(), charges=USD_CHARGES,
        filters=pl.DataFrame(schema=FILTER_SCHEMA), customers=customers(), wallets=wallet("0").clear(),
        customer_sequences={CUSTOMER: 1}, number_prefix="MTH", tax_book=customer_tax_book(),
        issued_numbers={CUSTOMER: {october_invoice: 1}}, frozen_totals={october_invoice: 1650},
        usage_thresholds=thresholds((200, False), (200, True)),
    )
    assert [(i["number"], i["invoice_type"], i["progressive_billing_credit_amount_cents"])
            for i in result.invoices.iter_rows(named=True)] == [("MTH-001-001", "subscription", 0)]
    assert result.progressive_billing_credits.is_empty() and result.applied_usage_thresholds.is_empty()


ADVANCE_CHARGE = "charge-advance"


def image_events(images: int) -> pl.DataFrame:
    """One event of `images` images on the charge paid in advance, arrived Oct 3."""
    return pl.DataFrame([{"event_record_id": "e-image", "subscription_id": SUBSCRIPTION, "billing_period_id": PERIOD,
                          "charge_id": ADVANCE_CHARGE, "charge_filter_id": None, "arrival_date": D(2026, 10, 3),
                          "charge_order": 1, "units": Decimal(images)}],
                        schema={"event_record_id": pl.String, "subscription_id": pl.String, "billing_period_id": pl.String,
                                "charge_id": pl.String, "charge_filter_id": pl.String, "arrival_date": pl.Date,
                                "charge_order": pl.Int64, "units": MONEY})


def test_a_pay_in_advance_charge_counts_in_the_lifetime_usage_and_its_threshold_but_is_not_billed_progressively():
    # The USD charges plus a standard charge paid in advance, 1.00 USD an image; 1 image arrives Oct 3.
    # Threshold 3.00 fixed. Oct 3: arrears 0 + advance 100 = 100. Oct 5: package 2,000,001 tokens
    # = 3 packages = 255, + 100 = 355 >= 300: a progressive invoice of the arrears 255 only (the
    # image has its own invoice, Oct 3), VAT 10% 25.5 -> 26, due 281; lifetime on it 355.
    # Through Oct 20 the lifetime usage is nothing invoiced before October + current 255 + 100 = 355.
    # (Without the advance charge, 255 < 300: no progressive invoice at all.)
    charges = pl.concat([USD_CHARGES, pl.DataFrame([{**charge(ADVANCE_CHARGE, "standard", {"amount": "1"}, 2),
                                                     "billable_metric_id": "metric-images", "billable_metric_code": "images",
                                                     "is_pay_in_advance": True}], schema=CHARGE_SCHEMA)])
    image_usage = pl.DataFrame([usage(ADVANCE_CHARGE, 1, D(2026, 10, 3))], schema=USAGE_SCHEMA)
    result = bill(
        through=D(2026, 10, 20), usage=pl.concat([USD_USAGE, image_usage]), periods=october(), charges=charges,
        filters=pl.DataFrame(schema=FILTER_SCHEMA), customers=customers(), wallets=wallet("0").clear(),
        customer_sequences={CUSTOMER: 1}, number_prefix="MTH", tax_book=customer_tax_book(),
        usage_thresholds=thresholds((300, False)), charge_events=image_events(1),
    )
    invoices = [(i["invoice_type"], i["issuing_date"], i["fees_amount_cents"], i["taxes_amount_cents"], i["total_amount_cents"])
                for i in result.invoices.sort("issuing_date").iter_rows(named=True)]
    assert invoices == [("subscription", D(2026, 10, 3), 100, 10, 110),
                        ("progressive_billing", D(2026, 10, 5), 255, 26, 281)]
    assert [(r["lifetime_usage_amount_cents"], r["created_on"]) for r in result.applied_usage_thresholds.iter_rows(named=True)] == [
        (355, D(2026, 10, 5))]
    assert [(r["invoiced_usage_amount_cents"], r["current_usage_amount_cents"], r["total_usage_amount_cents"])
            for r in result.lifetime_usage.iter_rows(named=True)] == [(0, 355, 355)]


@pytest.mark.parametrize(("through", "balance", "ongoing_usage"), [
    # Oct 20: MTH-001-001 (Oct 5: package 255 + VAT 26 = 281) was paid by the wallet on Oct 6:
    #   5,000 - 281 = 4,719. The open usage is the same 3 packages: 255 + 26 = 281, all of it billed
    #   by MTH-001-001 (255 - no credit + 26): ongoing usage 281 - 281 = 0 (not 281 counted twice).
    (D(2026, 10, 20), 4719, 0),
    # Nov 1: MTH-001-002 (Oct 31: package 255 - credit 255 + VAT 0, standard 245 + VAT 25 = 270) was
    #   paid on Nov 1: 4,719 - 270 = 4,449. Open usage 281 + 270 = 551, billed 281 + 0 + 270 = 551: 0.
    (D(2026, 11, 1), 4449, 0),
])
def test_usage_billed_on_a_progressive_invoice_leaves_the_wallet_s_ongoing_usage_once_the_wallet_paid_it(
        through, balance, ongoing_usage):
    result = bill(
        through=through, usage=USD_USAGE, periods=october(), charges=USD_CHARGES,
        filters=pl.DataFrame(schema=FILTER_SCHEMA), customers=customers(), wallets=wallet("50"),
        customer_sequences={CUSTOMER: 1}, number_prefix="MTH", tax_book=customer_tax_book(),
        usage_thresholds=thresholds((200, False), (200, True)),
    )
    (row,) = result.wallet_balances.to_dicts()
    assert (row["balance_cents"], row["ongoing_usage_balance_cents"]) == (balance, ongoing_usage)


def test_a_plan_whose_charges_are_all_paid_in_advance_gets_no_progressive_invoice_but_keeps_its_lifetime_usage():
    # Only the images charge (1.00 USD an image, paid in advance): 5 images on Oct 3 = 500, past the
    # 3.00 threshold, but billed on their own invoice (500 + VAT 50): nothing is left for a
    # progressive invoice to bill. Lifetime usage through Oct 20: 0 invoiced before + 500 current.
    charges = pl.DataFrame([{**charge(ADVANCE_CHARGE, "standard", {"amount": "1"}, 0), "is_pay_in_advance": True}],
                           schema=CHARGE_SCHEMA)
    result = bill(
        through=D(2026, 10, 20), usage=pl.DataFrame([usage(ADVANCE_CHARGE, 5, D(2026, 10, 3))], schema=USAGE_SCHEMA),
        periods=october(), charges=charges, filters=pl.DataFrame(schema=FILTER_SCHEMA), customers=customers(),
        wallets=wallet("0").clear(), customer_sequences={CUSTOMER: 1}, number_prefix="MTH",
        tax_book=customer_tax_book(), usage_thresholds=thresholds((300, False), (100, True)),
        charge_events=image_events(5),
    )
    assert [(i["invoice_type"], i["fees_amount_cents"], i["total_amount_cents"]) for i in result.invoices.iter_rows(named=True)] == [
        ("subscription", 500, 550)]
    assert [(r["invoiced_usage_amount_cents"], r["current_usage_amount_cents"])
            for r in result.lifetime_usage.iter_rows(named=True)] == [(0, 500)]
