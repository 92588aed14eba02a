"""Exact money: currency exponents and the one rounding rule, half-up to the currency's exponent."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 minor units for the currencies whose exponent is not 2. Everything else Lago accepts
# has two decimals; an unknown code is refused by `currency_exponent`.
_EXPONENT_NOT_TWO = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
_TWO_DECIMALS = set(
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BWP BYN BZD CAD CDF "
    "CHF CNY COP CRC CVE CZK DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD GTQ GYD HKD HNL HRK HTG "
    "HUF IDR ILS INR JMD KES KGS KHR KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRO MUR "
    "MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR "
    "SEK SGD SHP SLL SOS SRD STD SZL THB TJS TOP TRY TTD TWD TZS UAH USD UYU UZS WST XCD YER ZAR ZMW".split()
)


class UnknownCurrency(KeyError):
    """A currency code with no ISO 4217 exponent in our table. A `KeyError`, so a caller that checks
    codes (the catalog, payments) catches it as such; its message names the code."""

    def __init__(self, currency: str):
        super().__init__(currency)
        self.currency = currency

    def __str__(self) -> str:
        return f"unknown currency {self.currency!r}: no ISO 4217 exponent is known for it"


def currency_exponent(currency: str) -> int:
    """Number of decimals of the currency's minor unit: USD 2, JPY 0, KWD 3."""
    if currency in _EXPONENT_NOT_TWO:
        return _EXPONENT_NOT_TWO[currency]
    if currency in _TWO_DECIMALS:
        return 2
    raise UnknownCurrency(currency)


def round_half_up(amount: Decimal, exponent: int) -> Decimal:
    """Round to `exponent` decimals, ties away from zero (2.345 -> 2.35, -2.345 -> -2.35)."""
    return amount.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP)


def to_cents(amount: Decimal, currency: str) -> int:
    """An amount in currency units to integer minor units, rounded half-up: 2.005 USD -> 201."""
    exponent = currency_exponent(currency)
    return int(round_half_up(amount, exponent).scaleb(exponent))


def from_cents(cents: int, currency: str) -> Decimal:
    """Integer minor units back to an exact amount in currency units: 201 USD -> 2.01."""
    return Decimal(cents).scaleb(-currency_exponent(currency))


def format_money(cents: int, currency: str) -> str:
    """Integer minor units as text for people, exactly, with the currency's exponent and thousands
    separators: 142000 EUR -> `1,420.00 EUR`, 150000 JPY -> `150,000 JPY`, 123456 KWD ->
    `123.456 KWD`, -235 USD -> `-2.35 USD`. The one way money is shown on the console, in
    documents, reports and summaries (JSON carries cents, not this text)."""
    return f"{from_cents(cents, currency):,.{currency_exponent(currency)}f} {currency}"


_NAMESPACE = uuid.UUID("6f1c2a57-5b0e-4c7e-9a53-3d1c0de0b111")


def stable_id(kind: str, *natural_key: object) -> str:
    """A deterministic UUID (v5) from an entity kind and its natural key, so reruns keep ids."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join([kind, *map(str, natural_key)])))
