"""Taxes: which apply to a fee, EU VAT decided per customer, and how tax amounts are rounded.

Pure functions. Rates are percentages as `Decimal`; amounts are integer minor units (cents).

- A fee takes the taxes of the first non-empty level: its charge, its plan, its customer, then the
  organization's default (taxes with `applied_to_organization`).
- With the billing entity's `eu_tax_management`, the customer level is decided by the EU VAT rule
  (`eu_vat_decision`) unless the customer lists its own `tax_codes`.
- Tax of a fee: `amount_cents * rate / 100`, kept precise and shown rounded half-up; the tax of an
  invoice is, per tax, the sum of its fees' precise taxes rounded half-up once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# EU member states (ISO 3166-1 alpha-2; Greece is GR here, EL only in VAT numbers).
EU_MEMBER_STATES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)

# The rules `eu_vat_decision` can return, with the sentence printed on the invoice.
RULE_TEXT = {
    "reverse_charge": "VAT reverse charge: EU business customer with a VAT number in another member state "
                      "(Article 196, Directive 2006/112/EC)",
    "domestic": "VAT at the seller's rate: customer in the seller's country",
    "eu_consumer": "VAT at the customer's country's standard rate: consumer in the EU",
    "outside_eu": "No EU VAT: customer outside the EU",
    "unknown_country": "VAT at the seller's rate: the customer's country is unknown",
}


@dataclass(frozen=True)
class Tax:
    code: str
    name: str
    rate: Decimal
    description: str | None = None


@dataclass(frozen=True)
class VatRate:
    """One row of the dated EU rate table: `rate` applies from `valid_from` until the next row."""

    country: str
    rate: Decimal
    valid_from: dt.date


@dataclass(frozen=True)
class VatDecision:
    rule: str
    tax: Tax

    @property
    def text(self) -> str:
        return RULE_TEXT[self.rule]


class TaxError(ValueError):
    """A tax cannot be decided from the data (for example no rate known for a date)."""


def first_non_empty(*levels: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """The tax codes of the first level that names any: charge, plan, customer, organization."""
    for codes in levels:
        if codes:
            return tuple(codes)
    return ()


def standard_rate(table: list[VatRate], country: str, on: dt.date) -> Decimal:
    """The standard VAT rate of `country` in force on `on` (the latest row starting on or before it)."""
    rows = [r for r in table if r.country == country and r.valid_from <= on]
    if not rows:
        raise TaxError(f"no EU VAT rate for {country} on {on.isoformat()} in the rate table")
    return max(rows, key=lambda r: r.valid_from).rate


def eu_vat_decision(
    seller_country: str, customer_country: str | None, tax_identification_number: str | None,
    table: list[VatRate], on: dt.date,
) -> VatDecision:
    """The EU VAT rule for a customer of a seller established in `seller_country`, on date `on`.

    A non-empty `tax_identification_number` makes the customer a business with a VAT number (it
    is not checked against VIES: there is no network in a batch run).
    """
    seller = seller_country.upper()
    country = (customer_country or "").upper() or None

    def vat(code_country: str, rule: str) -> VatDecision:
        rate = standard_rate(table, code_country, on)
        return VatDecision(rule, Tax(f"lago_eu_{code_country.lower()}_standard",
                                     f"VAT {code_country} standard", rate, RULE_TEXT[rule]))

    if country is None:
        return vat(seller, "unknown_country")
    if country not in EU_MEMBER_STATES:
        return VatDecision("outside_eu", Tax("lago_eu_tax_exempt", "Tax exempt", Decimal(0), RULE_TEXT["outside_eu"]))
    if country == seller:
        return vat(seller, "domestic")
    if tax_identification_number and tax_identification_number.strip():
        return VatDecision("reverse_charge",
                           Tax("lago_eu_reverse_charge", "Reverse charge", Decimal(0), RULE_TEXT["reverse_charge"]))
    return vat(country, "eu_consumer")


def fee_tax_precise(amount_cents: int | Decimal, rate: Decimal) -> Decimal:
    """The unrounded tax of one fee, in cents: `amount * rate / 100`."""
    return Decimal(amount_cents) * rate / 100


def half_up_cents(value: Decimal) -> int:
    """Cents rounded half-up to a whole minor unit (the amounts here are already in minor units)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class AppliedTax:
    """One tax of one invoice: the base it applies to, and the tax rounded once."""

    tax: Tax
    fees_amount_cents: int
    amount_cents: int


def invoice_taxes(fee_taxes: list[tuple[int | Decimal, tuple[Tax, ...]]]) -> list[AppliedTax]:
    """Per tax, over the invoice's fees `(amount_cents, taxes)` (each fee's amount less its exact
    share of coupons): the base, rounded half-up to a whole cent, and the sum of the fees' precise
    taxes, rounded half-up once. Ordered by tax code."""
    bases: dict[str, int | Decimal] = {}
    precise: dict[str, Decimal] = {}
    taxes: dict[str, Tax] = {}
    for amount_cents, fee_tax_list in fee_taxes:
        for tax in fee_tax_list:
            taxes[tax.code] = tax
            bases[tax.code] = bases.get(tax.code, 0) + amount_cents
            precise[tax.code] = precise.get(tax.code, Decimal(0)) + fee_tax_precise(amount_cents, tax.rate)
    return [AppliedTax(taxes[c], half_up_cents(Decimal(bases[c])), half_up_cents(precise[c])) for c in sorted(taxes)]


@dataclass(frozen=True)
class TaxBook:
    """Everything that decides a fee's taxes, read from the catalog and the rate table."""

    taxes: dict[str, Tax]
    charge_codes: dict[str, tuple[str, ...]]
    plan_codes: dict[str, tuple[str, ...]]
    customer_codes: dict[str, tuple[str, ...]]
    customer_places: dict[str, tuple[str | None, str | None]]  # customer_id -> (country, tax id)
    organization_codes: tuple[str, ...] = ()  # taxes `applied_to_organization`: the default
    seller_country: str | None = None
    eu_tax_management: bool = False
    vat_rates: tuple[VatRate, ...] = ()

    def vat_decision(self, customer_id: str, on: dt.date) -> VatDecision | None:
        """The EU VAT rule of a customer, when the seller automates EU VAT and the customer lists no
        taxes of its own."""
        if not self.eu_tax_management or self.customer_codes.get(customer_id):
            return None
        country, tax_id = self.customer_places.get(customer_id, (None, None))
        return eu_vat_decision(self.seller_country or "", country, tax_id, list(self.vat_rates), on)

    def fee_taxes(self, charge_id: str | None, plan_id: str | None, customer_id: str, on: dt.date) -> tuple[Tax, ...]:
        """The taxes of a fee: charge, plan, customer (or its EU VAT rule), then organization."""
        decision = self.vat_decision(customer_id, on)
        customer_level = (decision.tax,) if decision else tuple(self.taxes[c] for c in self.customer_codes.get(customer_id, ()))
        codes = first_non_empty(self.charge_codes.get(charge_id or "", ()), self.plan_codes.get(plan_id or "", ()))
        if codes:
            return tuple(self.taxes[c] for c in codes)
        if customer_level:
            return customer_level
        return tuple(self.taxes[c] for c in self.organization_codes)


def book_from_tables(
    taxes: list[dict], charges: list[dict], plans: list[dict], customers: list[dict],
    billing_entities: list[dict], vat_rates: list[dict],
) -> TaxBook:
    """A `TaxBook` from the catalog tables (rows as dicts; tax codes as JSON text) and the rate seed."""
    import json

    def codes(text: str | None) -> tuple[str, ...]:
        return tuple(json.loads(text)) if text else ()

    entity = billing_entities[0] if billing_entities else {}
    return TaxBook(
        taxes={t["code"]: Tax(t["code"], t["name"], Decimal(t["rate"]), t["description"]) for t in taxes},
        charge_codes={c["charge_id"]: codes(c["tax_codes_json"]) for c in charges},
        plan_codes={p["plan_id"]: codes(p["tax_codes_json"]) for p in plans},
        customer_codes={c["customer_id"]: codes(c["tax_codes_json"]) for c in customers},
        customer_places={c["customer_id"]: (c["country"], c["tax_identification_number"]) for c in customers},
        organization_codes=tuple(sorted(t["code"] for t in taxes if t["is_applied_to_organization"])),
        seller_country=entity.get("country"),
        eu_tax_management=bool(entity.get("is_eu_tax_management")),
        vat_rates=tuple(VatRate(r["country_code"], Decimal(str(r["standard_rate"])), r["valid_from"]) for r in vat_rates),
    )
