"""The invoice a customer reads: one HTML page and one PDF per finalized invoice.

`invoice_view` turns warehouse rows into what the document shows (pure, tested on its own);
`render_html` and `render_pdf` lay it out. Amounts are the invoice's integer cents, formatted with
the currency's exponent; nothing is recomputed here. Dates come from the data, so a rerun writes
the same bytes.
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
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import jinja2

from dagster_project.billing.money import currency_exponent, from_cents
from dagster_project.billing.taxes import RULE_TEXT

TEMPLATES = Path(__file__).parent / "templates"
UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# The characters nearly every document is written in: Latin (Basic, Latin-1, Extended-A and -B),
# Greek, Cyrillic, general punctuation and currency signs, about 1,200 of DejaVu Sans's 6,253
# glyphs. fpdf2 parses the whole font file for every document (two thirds of a render), so a
# document written only in these is drawn from a copy of the font cut to them (`_cut_font`);
# any other character takes the whole font. The glyphs drawn are the same either way.
COMMON_CHARACTERS = frozenset(
    [*range(0x20, 0x7F), *range(0xA0, 0x250), *range(0x370, 0x530), *range(0x2000, 0x2070), *range(0x20A0, 0x20C1)]
)
# This module's source as imported: part of the renderer's identity (see `pdf_key`).
_SOURCE_SHA256 = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def money(cents: int, currency: str) -> str:
    """`1,904.00 EUR`: the exact amount with the currency's exponent and thousands separators."""
    amount = from_cents(cents, currency)
    return f"{amount:,.{currency_exponent(currency)}f} {currency}"


def units_text(units: Decimal) -> str:
    text = f"{Decimal(units).normalize():,f}"
    return text


def unit_price(fee: dict, currency: str) -> str:
    """How the line is priced, in the words of its charge model."""
    if fee["fee_type"] == "subscription":
        return f"{money(fee['amount_cents_plan'], currency)} per {fee.get('interval') or 'period'}" if fee.get("amount_cents_plan") is not None else ""
    if fee["fee_type"] in ("true_up", "commitment"):
        return "minimum"
    props = json.loads(fee["properties_json"]) if fee.get("properties_json") else {}
    model = fee.get("charge_model")
    if model == "package" and props:
        free = Decimal(str(props.get("free_units") or 0))
        text = f"{Decimal(str(props['amount'])).normalize():f} {currency} per {units_text(Decimal(str(props['package_size'])))}"
        return text + (f" ({units_text(free)} free)" if free else "")
    if model == "standard" and props:
        return f"{Decimal(str(props['amount'])).normalize():f} {currency} per unit"
    if model == "percentage" and props:
        return f"{Decimal(str(props['rate'])).normalize():f} %"
    units = Decimal(fee["units"] or 0)
    if units:
        average = (Decimal(fee["precise_amount"]) / units).quantize(Decimal("1E-12"), rounding=ROUND_HALF_UP)
        return f"{average.normalize():f} {currency} per unit (average)"
    return ""


def invoice_view(invoice: dict, fees: list[dict], customer: dict, seller: dict | None, applied_taxes: list[dict]) -> dict:
    """What the document shows, as plain strings."""
    currency = invoice["currency"]
    granted = invoice["prepaid_granted_credit_amount_cents"] or 0
    purchased = invoice["prepaid_purchased_credit_amount_cents"] or 0
    fees_cents, taxes_cents = invoice["fees_amount_cents"], invoice["taxes_amount_cents"]
    lines = []
    for fee in fees:
        if fee["fee_type"] == "credit":
            description = "Prepaid credits"
        elif fee["fee_type"] == "subscription":
            description = f"Subscription: {fee.get('plan_name') or fee.get('plan_code')}"
        elif fee["fee_type"] == "commitment":
            description = "Minimum commitment true-up"
        else:
            description = fee.get("charge_display_name") or "Usage"
            if fee.get("filter_display_name"):
                description += f" — {fee['filter_display_name']}"
            if fee["fee_type"] == "true_up":
                description += " (minimum spend true-up)"
        lines.append({
            "description": description,
            "units": units_text(Decimal(fee["units"] or 0)),
            "unit_price": unit_price(fee, currency) if fee["fee_type"] != "credit" else f"{invoice.get('paid_credits')} credits",
            "amount": money(fee["amount_cents"], currency),
            "tax_rate": f"{Decimal(fee.get('taxes_rate') or 0).normalize():f} %",
        })
    seller = seller or {}
    period = ""
    if invoice.get("period_start_date") and invoice.get("period_end_date"):
        last_day = invoice["period_end_date"] - dt.timedelta(days=1)
        period = f"{invoice['period_start_date'].isoformat()} to {last_day.isoformat()}"
    return {
        "title": "Invoice" if invoice["invoice_type"] == "subscription" else "Invoice (prepaid credits)",
        "number": invoice["number"],
        "issuing_date": invoice["issuing_date"].isoformat(),
        "period": period,
        "subscription": invoice.get("external_subscription_id") or "",
        "seller": [x for x in (seller.get("name") or seller.get("code"), seller.get("address_line1"), seller.get("address_line2"),
                               " ".join(x for x in (seller.get("zipcode"), seller.get("city")) if x), seller.get("country"),
                               f"VAT {seller['tax_identification_number']}" if seller.get("tax_identification_number") else None,
                               seller.get("email")) if x],
        "customer": [x for x in (customer.get("name") or customer["external_id"], customer.get("email"), customer.get("country"),
                                 f"VAT {customer['tax_identification_number']}" if customer.get("tax_identification_number") else None) if x],
        "lines": lines,
        "subtotal": money(fees_cents, currency),
        "taxes": [{"name": f"{t['tax_name']} ({Decimal(t['tax_rate']).normalize():f} %)", "base": money(t["fees_amount_cents"], currency),
                   "amount": money(t["amount_cents"], currency)} for t in applied_taxes],
        "total_with_taxes": money(fees_cents + taxes_cents, currency),
        "credits": money(granted + purchased, currency) if granted + purchased else "",
        "amount_due": money(fees_cents + taxes_cents - granted - purchased, currency),
        "tax_rule": RULE_TEXT[invoice["tax_rule"]] if invoice.get("tax_rule") else "",
        "payment_status": invoice.get("payment_status") or "pending",
    }


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, keep_trailing_newline=True)


def render_html(view: dict) -> str:
    return _ENV.get_template("invoice.html.j2").render(v=view)


def render_pdf(view: dict) -> bytes:
    """An A4 PDF of the same content. With DejaVu Sans installed any script prints; otherwise the
    core Helvetica font is used and characters outside Latin-1 print as `?`."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(dt.datetime.fromisoformat(view["issuing_date"]).replace(tzinfo=dt.timezone.utc))
    pdf.set_title(f"{view['title']} {view['number']}")
    if UNICODE_FONT.exists():
        cut = _cut_font() if _characters(view) <= COMMON_CHARACTERS else None
        pdf.add_font("body", "", str(cut or UNICODE_FONT))
        family, text = "body", str
    else:
        family = "helvetica"

        def text(value: str) -> str:
            return value.replace("—", "-").encode("latin-1", "replace").decode("latin-1")
    pdf.add_page()
    pdf.set_font(family, size=16)
    pdf.cell(0, 10, text(f"{view['title']} {view['number']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=9)
    pdf.cell(0, 5, text(f"Issued {view['issuing_date']}" + (f" · period {view['period']}" if view["period"] else "")
                        + (f" · subscription {view['subscription']}" if view["subscription"] else "")), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    y = pdf.get_y()
    pdf.multi_cell(90, 5, text("From\n" + "\n".join(view["seller"])))
    pdf.set_xy(110, y)
    pdf.multi_cell(90, 5, text("Bill to\n" + "\n".join(view["customer"])))
    pdf.ln(4)
    widths = (78, 28, 46, 10, 28)
    for row in [("Description", "Units", "Unit price", "Tax", "Amount")] + [
        (line["description"], line["units"], line["unit_price"], line["tax_rate"], line["amount"]) for line in view["lines"]
    ]:
        for width, value, align in zip(widths, row, ("L", "R", "R", "R", "R"), strict=True):
            pdf.cell(width, 6, text(value), border="B", align=align)
        pdf.ln(6)
    pdf.ln(2)
    totals = [("Subtotal excluding taxes", view["subtotal"])]
    totals += [(f"{t['name']} on {t['base']}", t["amount"]) for t in view["taxes"]]
    totals += [("Total including taxes", view["total_with_taxes"])]
    if view["credits"]:
        totals.append(("Prepaid credits applied", f"-{view['credits']}"))
    totals.append(("Amount due", view["amount_due"]))
    for label, value in totals:
        pdf.cell(sum(widths[:-1]), 6, text(label), align="R")
        pdf.cell(widths[-1], 6, text(value), align="R", new_x="LMARGIN", new_y="NEXT")
    if view["tax_rule"]:
        pdf.ln(3)
        pdf.multi_cell(0, 5, text(view["tax_rule"]))
    return bytes(pdf.output())


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
# and imports fpdf2 (about 0.6 s), which 64 documents (about 1.3 s in one process) repay.
PARALLEL_FROM = 64


def render_pdfs(views: list[dict], workers: int | None = None) -> list[bytes]:
    """`render_pdf` of each view, in order. fpdf2 lays out, subsets the font and compresses in
    Python (about 20 ms a document from the cut font, 50-75 ms from the whole one), so many
    documents are rendered by one process per core (`workers`: by default the cores this process
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
def _pdf_renderer() -> dict:
    """What `render_pdf` depends on besides the view: this module's code, the libraries that lay
    out, subset the font and compress, and the font file itself. (Versions from the installed
    metadata: importing fpdf2 costs more than reading a cached PDF.)"""
    return {
        "module": _SOURCE_SHA256, "fpdf2": importlib.metadata.version("fpdf2"),
        "fonttools": importlib.metadata.version("fonttools"),
        "zlib": zlib.ZLIB_RUNTIME_VERSION, "python": platform.python_version(),
        "font": hashlib.sha256(UNICODE_FONT.read_bytes()).hexdigest() if UNICODE_FONT.exists() else None,
    }


def pdf_key(view: dict) -> str:
    """The SHA-256 of everything `render_pdf(view)` is made from: the view (plain strings, lists and
    dicts, so its JSON text is exact) and the renderer. `render_pdf` is deterministic (dates come
    from the data), so two equal keys mean the same PDF bytes."""
    text = json.dumps({"renderer": _pdf_renderer(), "view": view}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
