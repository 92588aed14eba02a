"""The invoice a customer reads: one HTML page and one PDF per finalized invoice.

`invoice_view` turns warehouse rows into a document view: what the document shows, as plain
strings (pure, tested on its own). `render_html` and `render_pdf` lay out any document view (title,
meta lines, parties, a table of lines, totals, notes), so another document (a credit note) needs
only a view of its own. Amounts are the invoice's integer cents, formatted with the currency's
exponent; nothing is billed here. Dates come from the data, so a rerun writes the same bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import logging
import multiprocessing
import os
import platform
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from decimal import Decimal
from pathlib import Path

import jinja2

from dagster_project.billing.grouping import group_label
from dagster_project.billing.money import currency_exponent, format_money, from_cents
from dagster_project.billing.taxes import RULE_TEXT
from dagster_project.publish import pdf_fonts
from dagster_project.publish.lago_json import payment_due_date

TEMPLATES = Path(__file__).parent / "templates"
UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# The characters nearly every document is written in: Latin (Basic, Latin-1, Extended-A and -B),
# Greek, Cyrillic, general punctuation and currency signs, about 1,200 of DejaVu Sans's 6,253
# glyphs. A document written only in these is drawn from a copy of the font cut to them
# (`_cut_font`), which is quicker to parse and to cut per glyph set (`pdf_fonts`); any other
# character takes the whole font. The glyphs drawn are the same either way.
COMMON_CHARACTERS = frozenset(
    [*range(0x20, 0x7F), *range(0xA0, 0x250), *range(0x370, 0x530), *range(0x2000, 0x2070), *range(0x20A0, 0x20C1)]
)
# This module's source as imported: part of the renderer's identity (see `document_key`).
_SOURCE_SHA256 = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


money = format_money  # `1,904.00 EUR`: integer minor units as people read them (billing/money.py)


def price(amount: Decimal, currency: str) -> str:
    """A price from a charge's properties, exactly: every digit it has, and at least the currency's
    exponent (`12` -> `12.00 USD`, `0.000002` -> `0.000002 USD`). Prices are not rounded to cents:
    a per-token price is a fraction of one."""
    amount = Decimal(amount)
    places = max(currency_exponent(currency), -min(amount.normalize().as_tuple().exponent, 0))
    return f"{amount:,.{places}f} {currency}"


def units_text(units: Decimal) -> str:
    """`1,500,000`, `2.5`: exact, with thousands separators, no trailing zeros."""
    return f"{Decimal(units).normalize():,f}"


def _count(number: Decimal, singular: str, plural: str | None = None) -> str:
    return f"{units_text(number)} {singular if number == 1 else plural or singular + 's'}"


def _first(number: Decimal, singular: str) -> str:
    """`first 1,000 units`, `first transaction`: what a charge leaves free."""
    return f"first {singular}" if number == 1 else f"first {_count(number, singular)}"


def _rate(rate: Decimal) -> str:
    return f"{Decimal(rate).normalize():f} %"


def _decimal(value) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _adds_up(parts: Decimal, precise_amount) -> bool:
    """Whether a breakdown in words gives the fee's stored amount (to the 12 decimals it is kept
    to). When it does not (a charge paid in advance is priced event by event, a percentage charge
    per transaction), the line states the rule instead of a breakdown that would not add up."""
    return abs(parts - _decimal(precise_amount)) <= Decimal("1E-12")


INTERVAL_NOUNS = {"weekly": "week", "monthly": "month", "quarterly": "quarter", "semiannual": "half-year", "yearly": "year"}


def pricing_words(fee: dict, currency: str) -> str:
    """How a line's amount comes about, in the words of its charge model: `2 packages of 1,000,000
    units at 12.00 USD`, `1,234,567 units at 0.000002 USD`. The figures are the fee's units and
    events and the prices of its charge's properties (`properties_json`); where they do not give
    the stored amount exactly (see `_adds_up`), the price rule alone (`12.00 USD per package of
    1,000,000 units`). Nothing here is billed: the amount shown is the stored one."""
    if fee["fee_type"] == "credit":
        return credit_words(Decimal(fee["units"]), fee["amount_cents"], currency)
    if fee["fee_type"] == "subscription":
        if fee.get("amount_cents_plan") is None:
            return ""
        words = f"{money(fee['amount_cents_plan'], currency)} per {INTERVAL_NOUNS.get(fee.get('interval'), 'period')}"
        return words + (", prorated" if fee["amount_cents"] != fee["amount_cents_plan"] else "")
    if fee["fee_type"] == "true_up":
        return "the charge's minimum spend for the period, less its fees"
    if fee["fee_type"] == "commitment":
        return "the plan's minimum commitment for the period, less its fees"
    props = json.loads(fee["properties_json"], parse_float=Decimal) if fee.get("properties_json") else {}
    model = fee.get("charge_model")
    units = max(_decimal(fee.get("units")), Decimal(0))
    if not props:
        return "no price set" if model else ""
    words = {"standard": _standard_words, "package": _package_words, "percentage": _percentage_words,
             "graduated": _tiered_words, "graduated_percentage": _tiered_words, "volume": _volume_words}.get(model)
    if words is None:
        return ""
    return words(fee, props, units, currency)


def _standard_words(fee, props, units, currency) -> str:
    amount = _decimal(props.get("amount"))
    if _adds_up(units * amount, fee["precise_amount"]):
        return f"{_count(units, 'unit')} at {price(amount, currency)}"
    return f"{price(amount, currency)} per unit"


def _package_words(fee, props, units, currency) -> str:
    amount, size, free = (_decimal(props.get(k)) for k in ("amount", "package_size", "free_units"))
    free_words = f" ({_first(free, 'unit')} free)" if free else ""
    whole, part = divmod(max(units - free, Decimal(0)), size) if size else (Decimal(0), 0)
    packages = whole + (1 if part else 0)  # every package started is paid
    if size and _adds_up(packages * amount, fee["precise_amount"]):
        return f"{_count(packages, 'package')} of {_count(size, 'unit')} at {price(amount, currency)}" + free_words
    return f"{price(amount, currency)} per package of {_count(size, 'unit')}" + free_words


def _percentage_words(fee, props, units, currency) -> str:
    rate, fixed = _decimal(props.get("rate")), _decimal(props.get("fixed_amount"))
    free_units, free_events = _decimal(props.get("free_units_per_total_aggregation")), _decimal(props.get("free_units_per_events"))
    low, high = props.get("per_transaction_min_amount"), props.get("per_transaction_max_amount")
    bounded = low not in (None, "") or high not in (None, "")
    free = [_first(free_units, "unit")] if free_units else []
    # (with a bound and free units, Lago's per-transaction loop frees transactions by units alone)
    free += [_first(free_events, "transaction")] if free_events and not (bounded and free_units) else []
    free_words = f" ({' and '.join(free)} free)" if free else ""
    paid_units = max(units - free_units, Decimal(0))
    paid_events = max(Decimal(fee.get("events_count") or 0) - free_events, Decimal(0))
    if _adds_up(paid_units * rate / 100 + paid_events * fixed, fee["precise_amount"]):
        words = f"{_rate(rate)} of {_count(paid_units, 'unit')}"
        return words + (f" + {_count(paid_events, 'transaction')} at {price(fixed, currency)}" if fixed else "") + free_words
    words = f"{_rate(rate)} of each transaction" + (f" + {price(fixed, currency)} per transaction" if fixed else "")
    bounds = ([f"at least {price(_decimal(low), currency)}"] if low not in (None, "") else []) + (
        [f"at most {price(_decimal(high), currency)}"] if high not in (None, "") else [])
    return words + (f", {' and '.join(bounds)} per transaction" if bounds else "") + free_words


def _tier_price(tier: dict, model: str, currency: str) -> str:
    return _rate(tier["rate"]) if model == "graduated_percentage" else price(tier["per_unit_amount"], currency)


def _flat(tier: dict, currency: str) -> str:
    return f" + {price(tier['flat_amount'], currency)} flat" if tier["flat_amount"] else ""


def _tiered_words(fee, props, units, currency) -> str:
    """Graduated (and graduated percentage): each tier reached prices the units that fall in it."""
    from dagster_project.billing.charge_models import tiers  # (polars: not for every PDF worker)

    model = fee["charge_model"]
    tier_list = tiers(fee["properties_json"], model)
    parts, total = [], Decimal(0)
    for tier in tier_list:
        if tier["tier_index"] > 0 and units <= tier["lower"]:
            break
        in_tier = max(min(units, tier["upper"] if tier["upper"] is not None else units) - tier["lower"], Decimal(0))
        per_unit = tier["rate"] / 100 if model == "graduated_percentage" else tier["per_unit_amount"]
        total += in_tier * per_unit + tier["flat_amount"]
        if model == "graduated_percentage":
            parts.append(f"{_rate(tier['rate'])} of {_count(in_tier, 'unit')}" + _flat(tier, currency))
        else:
            parts.append(f"{_count(in_tier, 'unit')} at {price(tier['per_unit_amount'], currency)}" + _flat(tier, currency))
    if tier_list and _adds_up(total, fee["precise_amount"]):
        return "; ".join(parts)
    return _tier_rules(tier_list, model, currency, "per unit" if model == "graduated" else "")


def _volume_words(fee, props, units, currency) -> str:
    """Volume: every unit at the price of the one tier the total falls in."""
    from dagster_project.billing.charge_models import tiers

    tier_list = tiers(fee["properties_json"], "volume")
    for tier in tier_list:
        if (tier["tier_index"] == 0 and units <= tier["lower"]) or (
                units > tier["lower"] and (tier["upper"] is None or units <= tier["upper"])):
            if _adds_up(units * tier["per_unit_amount"] + tier["flat_amount"], fee["precise_amount"]):
                return f"{_count(units, 'unit')} at {price(tier['per_unit_amount'], currency)}" + _flat(tier, currency) + (
                    f" (tier {_tier_range(tier)})")
            break
    return "every unit at the price of its total's tier: " + _tier_rules(tier_list, "volume", currency, "per unit")


def _tier_range(tier: dict) -> str:
    if tier["upper"] is None:
        return f"above {units_text(tier['lower'])}"
    return f"{units_text(tier['lower'])} to {units_text(tier['upper'])}"


def _tier_rules(tier_list: list[dict], model: str, currency: str, per: str) -> str:
    """The price list of a tiered charge: `0.01 USD per unit 0 to 1,000 + 10.00 USD flat; ...`."""
    per = f" {per}" if per else ""
    return "; ".join(f"{_tier_price(t, model, currency)}{per} {_tier_range(t)}{_flat(t, currency)}" for t in tier_list)


def credit_words(credits: Decimal, amount_cents: int, currency: str) -> str:
    """`100 prepaid credits at 1.00 USD`. A credit invoice stores the credits and the amount, not the
    wallet's rate: the rate shown is amount / credits when that quotient is exact (it is the rate
    the amount was billed at, rounded to cents); otherwise `... for 1.00 USD`."""
    amount = from_cents(amount_cents, currency)
    bought = _count(credits, "prepaid credit")
    if credits > 0:
        rate = (amount / credits).normalize()
        if rate * credits == amount:
            return f"{bought} at {price(rate, currency)}"
    return f"{bought} for {money(amount_cents, currency)}"


PAYMENT_STATUS = {"succeeded": "Paid", "pending": "Awaiting payment", "failed": "Payment failed"}


def payment_status_text(invoice: dict) -> str:
    status = invoice.get("payment_status") or "pending"
    words = PAYMENT_STATUS.get(status, status)
    return f"{words} on {invoice['paid_on'].isoformat()}" if status == "succeeded" and invoice.get("paid_on") else words


def party_lines(party: dict, fallback_name: str | None) -> list[str]:
    """A billing party as printed: legal name (else name), address, tax and registration numbers,
    e-mail. Empty fields leave no line."""
    place = " ".join(x for x in (party.get("zipcode"), party.get("city")) if x)
    return [x for x in (
        party.get("legal_name") or party.get("name") or fallback_name,
        party.get("address_line1"), party.get("address_line2"), place, party.get("state"), party.get("country"),
        f"Tax ID {party['tax_identification_number']}" if party.get("tax_identification_number") else None,
        f"Registration number {party['legal_number']}" if party.get("legal_number") else None,
        party.get("email"),
    ) if x]


def _fee_description(fee: dict) -> str:
    if fee["fee_type"] == "credit":
        return "Prepaid credits"
    if fee["fee_type"] == "subscription":
        return f"Subscription: {fee.get('plan_name') or fee.get('plan_code')}"
    if fee["fee_type"] == "commitment":
        return "Minimum commitment true-up"
    description = fee.get("charge_display_name") or "Usage"
    if fee.get("filter_display_name"):
        description += f" — {fee['filter_display_name']}"
    if label := group_label(fee.get("grouped_by")):  # (a fee of a bucket priced per group: its values)
        description += f" • {label}"
    return description + (" (minimum spend true-up)" if fee["fee_type"] == "true_up" else "")


# The table of an invoice: relative widths (the renderer spreads them over the page) and alignment.
INVOICE_COLUMNS = [
    {"label": "Description", "align": "left", "width": 100},
    {"label": "Units", "align": "right", "width": 26},
    {"label": "Tax", "align": "right", "width": 14},
    {"label": "Amount", "align": "right", "width": 30},
]


def invoice_view(invoice: dict, fees: list[dict], customer: dict, seller: dict | None, applied_taxes: list[dict],
                 credit_note_credits: list[dict] = (), coupon_credits: list[dict] = ()) -> dict:
    """What the invoice document shows, as a document view (see `render_pdf`): plain strings.
    `credit_note_credits`: the credit notes the invoice took (`number`, `amount_cents`);
    `coupon_credits`: what its coupons took off the fees (`coupon_name`, `coupon_code`,
    `amount_cents`), shown after the fees and before taxes, as in Lago, like the usage an earlier
    progressive billing invoice of the period billed (`progressive_billing_credit_amount_cents`,
    deducted first). The totals are the
    invoice's as stored by pricing (`billing.invoicing.with_invoice_totals`)."""
    currency = invoice["currency"]
    lines = [
        {"cells": [_fee_description(fee), units_text(Decimal(fee["units"] or 0)),
                   _rate(fee.get("taxes_rate") or 0), money(fee["amount_cents"], currency)],
         "detail": pricing_words(fee, currency)}
        for fee in fees
    ]
    meta = [("Number", invoice["number"]), ("Issue date", invoice["issuing_date"].isoformat()),
            ("Due date", payment_due_date(invoice, customer).isoformat()), ("Payment status", payment_status_text(invoice))]
    if invoice.get("period_start_date") and invoice.get("period_end_date"):
        last_day = invoice["period_end_date"] - dt.timedelta(days=1)
        meta.append(("Billing period", f"{invoice['period_start_date'].isoformat()} to {last_day.isoformat()}"))
    plans = list(dict.fromkeys(name for fee in fees if (name := fee.get("plan_name") or fee.get("plan_code"))))
    if plans:
        meta.append(("Plan", ", ".join(plans)))
    if invoice.get("external_subscription_id"):
        meta.append(("Subscription", invoice["external_subscription_id"]))
    seller = seller or {}
    totals = []
    progressive = invoice.get("progressive_billing_credit_amount_cents") or 0
    if coupon_credits or progressive:
        totals.append({"label": "Fees", "value": money(invoice["fees_amount_cents"], currency)})
    if progressive:  # before the coupons, as Lago deducts it
        totals.append({"label": "Usage billed on an earlier progressive billing invoice",
                       "value": f"-{money(progressive, currency)}"})
    totals += [{"label": f"Coupon {c['coupon_name'] or c['coupon_code']} ({c['coupon_code']})",
                "value": f"-{money(c['amount_cents'], currency)}"} for c in coupon_credits]
    totals.append({"label": "Subtotal excluding taxes", "value": money(invoice["sub_total_excluding_taxes_amount_cents"], currency)})
    totals += [{"label": f"{t['tax_name']} ({_rate(t['tax_rate'])}) on {money(t['fees_amount_cents'], currency)}",
                "value": money(t["amount_cents"], currency)} for t in applied_taxes]
    totals.append({"label": "Total including taxes", "value": money(invoice["sub_total_including_taxes_amount_cents"], currency)})
    totals += [{"label": f"Credit note {c['number']}", "value": f"-{money(c['amount_cents'], currency)}"}
               for c in credit_note_credits]
    if invoice["prepaid_credit_amount_cents"]:
        totals.append({"label": "Prepaid credits applied", "value": f"-{money(invoice['prepaid_credit_amount_cents'], currency)}"})
    totals.append({"label": "Amount due", "value": money(invoice["total_amount_cents"], currency), "strong": True})
    return {
        "title": "Invoice" if invoice["invoice_type"] != "credit" else "Invoice for prepaid credits",
        "number": invoice["number"],
        "date": invoice["issuing_date"].isoformat(),
        "meta": [list(pair) for pair in meta],
        "parties": [party for party in ({"label": "From", "lines": party_lines(seller, seller.get("code"))},
                                        {"label": "Bill to", "lines": party_lines(customer, customer["external_id"])})
                    if party["lines"]],  # no seller in the catalog: no "From"
        "columns": [dict(column) for column in INVOICE_COLUMNS],
        "lines": lines,
        "totals": totals,
        "notes": [RULE_TEXT[invoice["tax_rule"]]] if invoice.get("tax_rule") else [],
    }


CREDIT_NOTE_COLUMNS = [
    {"label": "Description", "align": "left", "width": 110},
    {"label": "Tax", "align": "right", "width": 20},
    {"label": "Credited", "align": "right", "width": 40},
]
REASONS = {"duplicated_charge": "Duplicated charge", "product_unsatisfactory": "Product unsatisfactory",
           "order_change": "Order change", "order_cancellation": "Order cancellation",
           "fraudulent_charge": "Fraudulent charge", "other": "Other"}


def credit_note_view(note: dict, items: list[dict], taxes: list[dict], invoice: dict, customer: dict,
                     seller: dict | None) -> dict:
    """What a credit note document shows, as a document view: the invoice it corrects, each fee
    credited (`items`: fee rows with `credit_amount_cents`), its taxes, and how its total is paid
    back (credit on later invoices, refund). Only what the note says when it is issued, so the
    document never changes afterwards (its remaining credit is in its JSON)."""
    currency = note["currency"]
    meta = [("Number", note["number"]), ("Issue date", note["issuing_date"].isoformat()),
            ("Corrects invoice", f"{invoice['number']} of {invoice['issuing_date'].isoformat()}"),
            ("Reason", REASONS.get(note["reason"], note["reason"]))]
    if invoice.get("external_subscription_id"):
        meta.append(("Subscription", invoice["external_subscription_id"]))
    lines = [{"cells": [_fee_description(item), _rate(item.get("taxes_rate") or 0), money(item["credit_amount_cents"], currency)],
              "detail": f"of {money(item['amount_cents'], currency)} invoiced"} for item in items]
    # the items less their share of the invoice's coupons (the key is absent before coupons were credited)
    coupons = note.get("coupons_adjustment_amount_cents") or 0
    totals = [{"label": "Less coupons on these fees", "value": money(-coupons, currency)}] if coupons else []
    totals.append({"label": "Subtotal excluding taxes", "value": money(note["sub_total_excluding_taxes_amount_cents"], currency)})
    totals += [{"label": f"{t['tax_name']} ({_rate(t['tax_rate'])}) on {money(t['base_amount_cents'], currency)}",
                "value": money(t["amount_cents"], currency)} for t in taxes]
    totals.append({"label": "Total credited including taxes", "value": money(note["total_amount_cents"], currency), "strong": True})
    notes = [note["description"]] if note.get("description") else []
    if note["credit_amount_cents"]:
        totals.append({"label": "Credit on your next invoices", "value": money(note["credit_amount_cents"], currency)})
        notes.append(f"{money(note['credit_amount_cents'], currency)} is deducted from your next invoices, after taxes.")
    if note["refund_amount_cents"]:
        totals.append({"label": "Refunded", "value": money(note["refund_amount_cents"], currency)})
        notes.append(f"{money(note['refund_amount_cents'], currency)} is paid back to you.")
    seller = seller or {}
    return {
        "title": "Credit note",
        "number": note["number"],
        "date": note["issuing_date"].isoformat(),
        "meta": [list(pair) for pair in meta],
        "parties": [party for party in ({"label": "From", "lines": party_lines(seller, seller.get("code"))},
                                        {"label": "Credit to", "lines": party_lines(customer, customer["external_id"])})
                    if party["lines"]],
        "columns": [dict(column) for column in CREDIT_NOTE_COLUMNS],
        "lines": lines,
        "totals": totals,
        "notes": notes,
    }


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, keep_trailing_newline=True)


def render_html(view: dict) -> str:
    """The HTML page of any document view (an invoice today): the same content as `render_pdf`."""
    return _ENV.get_template("document.html.j2").render(v=view)


# The PDF page, in millimetres: A4 with 15 mm margins, the last 10 for the page footer.
PAGE_WIDTH, PAGE_HEIGHT, MARGIN, FOOTER = 210, 297, 15, 10
CONTENT_BOTTOM = PAGE_HEIGHT - MARGIN - FOOTER
BODY, SMALL, TITLE = 9, 7.5, 18  # font sizes, points
LINE, SMALL_LINE = 4.5, 3.8  # line heights, mm
PAD = 1.5  # space above and below the text of a table row
MUTED, INK, RULE = (101, 109, 118), (31, 35, 40), (208, 215, 222)


# Texts this process found to fit on one line: (font file, width, text, size) -> the text printed.
_FITS: dict[tuple, str] = {}
FITS_KEPT = 65536


class _Layout:
    """Draws a document view top to bottom: every block is measured before it is drawn, the next one
    starts below it, and a table row that would cross the bottom of the page starts a new page
    under the table header. Text wraps inside its column (`multi_cell`), never beyond."""

    def __init__(self, view: dict):
        from fpdf import FPDF

        self.view = view
        self.wrapped: dict[tuple, list[str]] = {}  # (width, text, size) -> lines, for texts that do not fit
        self.pdf = pdf = FPDF(format="A4")
        pdf.set_creation_date(dt.datetime.fromisoformat(view["date"]).replace(tzinfo=dt.timezone.utc))
        pdf.set_title(f"{view['title']} {view['number']}")
        pdf.set_margins(MARGIN, MARGIN, MARGIN)
        pdf.set_auto_page_break(False)  # pages are broken here, between rows
        if UNICODE_FONT.exists():
            cut = _cut_font() if _characters(view) <= COMMON_CHARACTERS else None
            pdf_fonts.add_font(pdf, "body", cut or UNICODE_FONT)
            self.family, self.text = "body", str
            self.font_file = str(cut or UNICODE_FONT)
        else:
            self.family, self.font_file = "helvetica", None
            self.text = lambda value: value.replace("—", "-").replace("•", "-").encode("latin-1", "replace").decode("latin-1")
        self.width = PAGE_WIDTH - 2 * MARGIN
        weights = [c["width"] for c in view["columns"]]
        self.columns = [self.width * w / sum(weights) for w in weights]
        self.aligns = ["R" if c["align"] == "right" else "L" for c in view["columns"]]

    def _font(self, size: float, color=INK) -> None:
        self.pdf.set_font(self.family, size=size)
        self.pdf.set_text_color(*color)

    def _wrapped(self, width: float, text: str, size: float) -> list[str]:
        """The lines `text` takes in a box `width` wide (explicit newlines kept), as printed. Each
        text is measured once per process and font (a row is measured, then drawn, and most texts
        recur from one document to the next: labels, column headers, totals' names), and one that
        fits is not broken (fpdf2's line breaking costs most of a render)."""
        key = (self.font_file, width, text, size)
        if key in _FITS:
            return [_FITS[key]] if text else []
        if (width, text, size) not in self.wrapped:
            self._font(size)
            printed = self.text(text)
            if not text or ("\n" not in printed and self.pdf.get_string_width(printed) <= width - 2 * self.pdf.c_margin):
                if len(_FITS) >= FITS_KEPT:
                    _FITS.pop(next(iter(_FITS)))  # the oldest
                _FITS[key] = printed
                return [printed] if text else []
            # (broken by fpdf2 each time: its dry run leaves traces in the document's glyph codes)
            self.wrapped[width, text, size] = self.pdf.multi_cell(width, 1, printed, dry_run=True, output="LINES")
        return self.wrapped[width, text, size]

    def _write(self, x: float, y: float, width: float, text: str, size: float, height: float, align="L", color=INK) -> float:
        """Draw wrapped text with its top at `y`; returns the y below it."""
        lines = self._wrapped(width, text, size)
        self._font(size, color)
        for number, line in enumerate(lines):
            self.pdf.set_xy(x, y + number * height)
            self.pdf.cell(width, height, line, align=align)
        return y + len(lines) * height

    def _room(self, y: float, height: float, header: bool = False) -> float:
        """`y`, or the top of a new page (under the table header when drawing the table) when a
        block `height` high would cross the bottom of this one."""
        if y + height <= CONTENT_BOTTOM:
            return y
        self.pdf.add_page()
        return self._table_header(MARGIN) if header else MARGIN

    def draw(self) -> bytes:
        view, pdf = self.view, self.pdf
        pdf.add_page()
        y = self._write(MARGIN, MARGIN, self.width, view["title"], TITLE, 9)
        y += 3
        label_width = 30
        for label, value in view["meta"]:
            self._write(MARGIN, y, label_width, label, BODY, LINE, color=MUTED)
            y = self._write(MARGIN + label_width, y, self.width - label_width, value, BODY, LINE)
        y += 6
        y = self._parties(y) + 6
        y = self._table_header(self._room(y, 2 * LINE + 2 * PAD + SMALL_LINE))
        for line in view["lines"]:
            y = self._row(y, line)
        y = self._totals(y + 2)
        for note in view["notes"]:
            y += 3
            y = self._room(y, len(self._wrapped(self.width, note, SMALL)) * SMALL_LINE)
            y = self._write(MARGIN, y, self.width, note, SMALL, SMALL_LINE, color=MUTED)
        self._footers()
        return pdf_fonts.output(pdf)

    def _parties(self, y: float) -> float:
        """The parties side by side; the block ends below the tallest."""
        parties = self.view["parties"]
        gap = 10
        width = (self.width - gap * (len(parties) - 1)) / max(len(parties), 1)
        heights = [SMALL_LINE + 1 + sum(len(self._wrapped(width, line, BODY)) for line in p["lines"]) * LINE for p in parties]
        y = self._room(y, max(heights, default=0))
        bottom = y
        for index, party in enumerate(parties):
            x = MARGIN + index * (width + gap)
            below = self._write(x, y, width, party["label"].upper(), SMALL, SMALL_LINE, color=MUTED) + 1
            for text in party["lines"]:
                below = self._write(x, below, width, text, BODY, LINE)
            bottom = max(bottom, below)
        return bottom

    def _cells(self, y: float, cells: list[str], size: float = BODY, color=INK) -> float:
        bottom = y
        x = MARGIN
        for width, text, align in zip(self.columns, cells, self.aligns, strict=True):
            bottom = max(bottom, self._write(x, y, width, text, size, LINE, align, color))
            x += width
        return bottom

    def _rule(self, y: float, width: float = 0.2, color=RULE) -> None:
        self.pdf.set_draw_color(*color)
        self.pdf.set_line_width(width)
        self.pdf.line(MARGIN, y, MARGIN + self.width, y)

    def _table_header(self, y: float) -> float:
        bottom = self._cells(y + PAD, [c["label"] for c in self.view["columns"]], SMALL, MUTED) + PAD
        self._rule(bottom, 0.3, MUTED)
        return bottom

    def _row(self, y: float, line: dict) -> float:
        first = self.columns[0]
        cells_height = max(len(self._wrapped(w, t, BODY)) for w, t in zip(self.columns, line["cells"], strict=True)) * LINE
        detail_height = len(self._wrapped(first, line.get("detail") or "", SMALL)) * SMALL_LINE
        below_first = len(self._wrapped(first, line["cells"][0], BODY)) * LINE + detail_height
        y = self._room(y, max(cells_height, below_first) + 2 * PAD, header=True)
        bottom = self._cells(y + PAD, line["cells"])
        if line.get("detail"):
            detail_top = y + PAD + len(self._wrapped(first, line["cells"][0], BODY)) * LINE
            bottom = max(bottom, self._write(MARGIN, detail_top, first, line["detail"], SMALL, SMALL_LINE, color=MUTED))
        bottom += PAD
        self._rule(bottom)
        return bottom

    def _totals(self, y: float) -> float:
        label_width, value_width = sum(self.columns[:-1]), self.columns[-1]
        for total in self.view["totals"]:
            size = BODY + 1 if total.get("strong") else BODY
            height = max(len(self._wrapped(label_width, total["label"], size)), len(self._wrapped(value_width, total["value"], size))) * LINE
            y = self._room(y, height + 2 * PAD)
            if total.get("strong"):
                self._rule(y, 0.4, INK)
            bottom = max(self._write(MARGIN, y + PAD, label_width, total["label"], size, LINE, "R"),
                         self._write(MARGIN + label_width, y + PAD, value_width, total["value"], size, LINE, "R"))
            y = bottom + PAD
        return y

    def _footers(self) -> None:
        """`MIS-003-001 · page 1 of 2` under each page, drawn once the number of pages is known."""
        pages = self.pdf.pages_count
        for number in range(1, pages + 1):
            self.pdf.page = number
            self._font(SMALL, MUTED)
            self.pdf.set_xy(MARGIN, PAGE_HEIGHT - MARGIN - SMALL_LINE)
            self.pdf.cell(self.width, SMALL_LINE, self.text(f"{self.view['title']} {self.view['number']} · page {number} of {pages}"), align="C")


def render_pdf(view: dict) -> bytes:
    """An A4 PDF of any document view: `title`, `number`, `date` (ISO, the PDF's creation date),
    `meta` (label and value pairs), `parties` (a label and lines each, side by side), `columns`
    (label, `align` left or right, relative `width`), `lines` (`cells`, one per column, and an
    optional `detail` printed small under the first), `totals` (label, value, optional `strong`)
    and `notes`. With DejaVu Sans installed any script prints; otherwise the core Helvetica font is
    used and characters outside Latin-1 print as `?`."""
    return _Layout(view).draw()


def _characters(value) -> set[int]:
    """The code points of the strings in a view (its values, lists and dicts: what is printed)."""
    if isinstance(value, str):
        return set(map(ord, value))
    found: set[int] = set()
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ():
        found |= _characters(item)
    return found


@functools.cache
def _cut_font() -> Path | None:
    """DejaVu Sans cut to `COMMON_CHARACTERS` (outlines, metrics, hinting, glyph names and the
    bounding box kept: a document drawn from it has the bytes it has from the whole font). Made
    once per user into their cache folder and reused by every process; None (the whole font is
    used) when it cannot be written there. Its name holds a hash of the font file, fontTools'
    version and the character set, so a change to any of them makes a new one."""
    from fontTools import subset, ttLib

    source = UNICODE_FONT.read_bytes()
    key = hashlib.sha256(source + importlib.metadata.version("fonttools").encode()
                         + ",".join(map(str, sorted(COMMON_CHARACTERS))).encode()).hexdigest()[:16]
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "meterhouse"
    path = folder / f"{UNICODE_FONT.stem}-common-{key}.ttf"
    if path.exists():
        return path
    # (the font's bounding box kept, not recomputed for the cut: fpdf2 prints it in the PDF)
    font = ttLib.TTFont(UNICODE_FONT, recalcTimestamp=False, recalcBBoxes=False)
    options = subset.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=True, hinting=True,
                             name_IDs=["*"], name_languages=["*"], layout_features=["*"], legacy_kern=True)
    options.drop_tables += ["FFTM"]
    cutter = subset.Subsetter(options)
    cutter.populate(unicodes=COMMON_CHARACTERS)
    cutter.subset(font)
    partial = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".partial", delete=False) as handle:
            partial = Path(handle.name)
            font.save(handle)
        os.replace(partial, path)  # whole or not at all, also with several processes at once
    except OSError as error:
        if partial is not None:
            partial.unlink(missing_ok=True)
        logging.getLogger(__name__).warning("no cut font in %s (%s): documents use the whole font", folder, error)
        return None
    return path


# From this many PDFs on, `render_pdfs` renders on every core: each worker starts a new Python
# and imports fpdf2 (about 0.6 s), which two workers repay from about 400 documents (at about 3 ms
# each: 1.2 s in one process, 0.6 s in each of two).
PARALLEL_FROM = 400


def render_pdfs(views: list[dict], workers: int | None = None) -> list[bytes]:
    """`render_pdf` of each view, in order. fpdf2 lays out and compresses in Python (about 3 ms of
    CPU a bench invoice, the font parsed once per process and cut once per glyph set: `pdf_fonts`),
    so many documents are rendered by one process per core (`workers`: by default the cores this process
    may use). Each render depends on its view
    alone, so the bytes are those of one process. The workers are started fresh ("spawn"), not
    forked: the parent holds DuckDB's threads."""
    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if len(views) >= PARALLEL_FROM and workers > 1:
        try:
            with ProcessPoolExecutor(min(workers, len(views)), mp_context=multiprocessing.get_context("spawn")) as pool:
                return list(pool.map(render_pdf, views, chunksize=max(1, len(views) // (4 * workers))))
        except BrokenProcessPool:  # a worker could not start (e.g. a parent run from standard input)
            logging.getLogger(__name__).warning("PDF workers failed to start: rendering %d PDFs in this process", len(views))
    return [render_pdf(view) for view in views]


@functools.cache
def renderer() -> dict:
    """What `render_html` and `render_pdf` depend on besides the view: this module's code, the HTML
    template and jinja2, the libraries that lay out, subset the font and compress, and the font file
    itself. (Versions from the installed metadata: importing fpdf2 costs more than reading a cached
    document.)"""
    return {
        "module": _SOURCE_SHA256, "jinja2": importlib.metadata.version("jinja2"),
        "templates": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(TEMPLATES.iterdir())},
        "fpdf2": importlib.metadata.version("fpdf2"),
        "fonttools": importlib.metadata.version("fonttools"),
        "zlib": zlib.ZLIB_RUNTIME_VERSION, "python": platform.python_version(),
        "font": hashlib.sha256(UNICODE_FONT.read_bytes()).hexdigest() if UNICODE_FONT.exists() else None,
    }


def document_key(view: dict) -> str:
    """The SHA-256 of everything `render_html(view)` and `render_pdf(view)` are made from: the view
    (plain strings, lists and dicts, so its JSON text is exact) and the renderer. Both renders are
    deterministic (dates come from the data), so two equal keys mean the same HTML and PDF bytes."""
    text = json.dumps({"renderer": renderer(), "view": view}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
