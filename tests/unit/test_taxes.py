"""Tax levels, EU VAT rules and tax rounding, each figure worked out by hand."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from dagster_project.billing.taxes import (
    Tax, TaxBook, TaxError, VatRate, eu_vat_decision, fee_tax_precise, first_non_empty, half_up_cents,
    invoice_taxes, standard_rate,
)

SEED = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "eu_vat_standard_rates.csv"


def _table() -> list[VatRate]:
    rows = SEED.read_text().splitlines()[1:]
    return [VatRate(c, Decimal(r), dt.date.fromisoformat(d)) for c, _, r, d in (line.split(",") for line in rows)]


def test_the_first_non_empty_level_wins():
    assert first_non_empty((), ["plan_vat"], ["customer_vat"]) == ("plan_vat",)
    assert first_non_empty(None, [], ["customer_vat"], ["org"]) == ("customer_vat",)
    assert first_non_empty((), (), ()) == ()


def test_the_rate_table_is_dated():
    table = _table()
    assert standard_rate(table, "FR", dt.date(2026, 11, 1)) == Decimal(20)
    assert standard_rate(table, "DE", dt.date(2026, 11, 1)) == Decimal(19)
    # Estonia: 20% in 2023, 22% from 2024-01-01, 24% from 2025-07-01.
    assert standard_rate(table, "EE", dt.date(2023, 12, 31)) == Decimal(20)
    assert standard_rate(table, "EE", dt.date(2025, 6, 30)) == Decimal(22)
    assert standard_rate(table, "EE", dt.date(2025, 7, 1)) == Decimal(24)
    assert standard_rate(table, "FI", dt.date(2024, 9, 1)) == Decimal("25.5")
    assert {r.country for r in table} == set("AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split())
    with pytest.raises(TaxError, match="no EU VAT rate for FR on 2022-12-31"):
        standard_rate(table, "FR", dt.date(2022, 12, 31))


@pytest.mark.parametrize(
    ("country", "tax_id", "rule", "code", "rate"),
    [
        ("FR", None, "domestic", "lago_eu_fr_standard", "20"),           # French consumer: seller's country
        ("FR", "FR40303265045", "domestic", "lago_eu_fr_standard", "20"),  # French business: still domestic
        ("DE", None, "eu_consumer", "lago_eu_de_standard", "19"),         # German consumer: German rate
        ("DE", "DE123456789", "reverse_charge", "lago_eu_reverse_charge", "0"),  # German business
        ("de", "DE123456789", "reverse_charge", "lago_eu_reverse_charge", "0"),  # lower-case code
        ("DE", "  ", "eu_consumer", "lago_eu_de_standard", "19"),         # a blank VAT number is none
        ("US", "12-3456789", "outside_eu", "lago_eu_tax_exempt", "0"),    # outside the EU
        ("CH", None, "outside_eu", "lago_eu_tax_exempt", "0"),
        (None, None, "unknown_country", "lago_eu_fr_standard", "20"),     # unknown: the seller's rate
    ],
)
def test_eu_vat_is_decided_per_customer(country, tax_id, rule, code, rate):
    decision = eu_vat_decision("FR", country, tax_id, _table(), dt.date(2026, 11, 1))
    assert (decision.rule, decision.tax.code, decision.tax.rate) == (rule, code, Decimal(rate))
    assert decision.text


def test_fee_tax_is_precise_and_invoice_tax_is_rounded_once_per_tax():
    vat = Tax("vat", "VAT", Decimal("20"))
    reduced = Tax("reduced", "Reduced", Decimal("5.5"))
    # Three fees of 0.03 at 20%: 0.6 cent each; per fee 1 cent (half-up), but the invoice rounds
    # the sum once: 1.8 -> 2 cents, not 3.
    assert fee_tax_precise(3, vat.rate) == Decimal("0.6")
    assert half_up_cents(Decimal("0.6")) == 1
    assert half_up_cents(Decimal("2.5")) == 3 and half_up_cents(Decimal("2.4999")) == 2
    applied = invoice_taxes([(3, (vat,)), (3, (vat,)), (3, (vat,)), (1000, (reduced,))])
    assert [(a.tax.code, a.fees_amount_cents, a.amount_cents) for a in applied] == [
        ("reduced", 1000, 55),  # 1000 * 5.5% = 55
        ("vat", 9, 2),          # 9 * 20% = 1.8 -> 2
    ]


def _book(**kw) -> TaxBook:
    taxes = {c: Tax(c, c, Decimal(r)) for c, r in [("charge_vat", "10"), ("plan_vat", "15"), ("cust_vat", "7"), ("org_vat", "20")]}
    base = dict(taxes=taxes, charge_codes={"ch": ("charge_vat",)}, plan_codes={"pl": ("plan_vat",)},
                customer_codes={"c_own": ("cust_vat",)}, customer_places={"c_de": ("DE", None), "c_own": ("DE", None)},
                organization_codes=("org_vat",), seller_country="FR", eu_tax_management=False, vat_rates=tuple(_table()))
    return TaxBook(**{**base, **kw})


def test_a_fee_takes_charge_then_plan_then_customer_then_organization_taxes():
    book = _book()
    day = dt.date(2026, 11, 1)
    assert [t.code for t in book.fee_taxes("ch", "pl", "c_own", day)] == ["charge_vat"]
    assert [t.code for t in book.fee_taxes(None, "pl", "c_own", day)] == ["plan_vat"]
    assert [t.code for t in book.fee_taxes("other", "other", "c_own", day)] == ["cust_vat"]
    assert [t.code for t in book.fee_taxes("other", "other", "c_de", day)] == ["org_vat"]
    assert book.vat_decision("c_de", day) is None  # no EU automation


def test_eu_automation_decides_the_customer_level_unless_the_customer_lists_taxes():
    book = _book(eu_tax_management=True)
    day = dt.date(2026, 11, 1)
    assert [(t.code, t.rate) for t in book.fee_taxes("other", "other", "c_de", day)] == [("lago_eu_de_standard", Decimal(19))]
    assert [t.code for t in book.fee_taxes("other", "other", "c_own", day)] == ["cust_vat"]
    assert book.vat_decision("c_own", day) is None
    assert [t.code for t in book.fee_taxes("ch", "pl", "c_de", day)] == ["charge_vat"]  # charge level still wins


def test_the_seed_table_has_one_row_per_country_and_date():
    rows = [line.split(",") for line in SEED.read_text().splitlines()[1:]]
    keys = [(r[0], r[3]) for r in rows]
    assert len(keys) == len(set(keys)) == 33
    assert all(len(r[0]) == 2 and r[0].isupper() for r in rows)


def test_each_usage_bucket_takes_its_period_rate_and_a_half_up_tax():
    """Three buckets of period p1 (plan pl, customer c1) and one of p2 (customer c2), taxes
    looked up per charge and period: charge `ch_taxed` has an 8.5 % tax of its own, `ch_free`
    falls back to customer c1's, which has none (and no organization tax), c2 has a 20 % tax.
    - p1/ch_taxed 1,230 cents: 1,230 * 8.5 / 100 = 104.55 -> 105 (half-up)
    - p1/ch_taxed  1,229 cents: 104.465 -> 104
    - p1/ch_free   5,000 cents: rate 0 -> 0
    - p2/ch_free     333 cents: 333 * 20 / 100 = 66.6 -> 67"""
    import polars as pl

    from dagster_project.billing.invoicing import _taxed_buckets

    book = TaxBook(
        taxes={"t85": Tax("t85", "Reduced", Decimal("8.5")), "t20": Tax("t20", "VAT", Decimal("20"))},
        charge_codes={"ch_taxed": ("t85",)}, plan_codes={}, customer_codes={"c2": ("t20",)}, customer_places={},
    )
    day = dt.date(2026, 11, 1)
    periods = pl.DataFrame({"billing_period_id": ["p1", "p2"], "plan_id": ["pl", "pl"], "customer_id": ["c1", "c2"],
                            "billing_day": [day, day]})
    buckets = pl.DataFrame({"billing_period_id": ["p1", "p1", "p1", "p2"],
                            "charge_id": ["ch_taxed", "ch_taxed", "ch_free", "ch_free"],
                            "amount_cents": [1230, 1229, 5000, 333]})
    taxed = _taxed_buckets(buckets, periods, book)
    assert taxed["taxes_rate"].to_list() == [Decimal("8.5"), Decimal("8.5"), Decimal(0), Decimal(20)]
    assert taxed["taxes_amount_cents"].to_list() == [105, 104, 0, 67]
    assert taxed.select("billing_period_id", "charge_id", "amount_cents").equals(buckets)
