"""The revenue report: one static HTML page, charts drawn as inline SVG (no script, no network).

`collect(con)` reads the analytics marts (`marts.fct_*`, see dbt_project/models/marts/analytics)
into a `ReportData`; `render(data)` turns it into HTML. Both are pure apart from the queries, so
the page is byte-stable for the same warehouse. Amounts stay integer minor units until they are
formatted for display.

The month that holds the billing date is still open: wherever a month is shown it is marked
incomplete (`month_label`), and no growth figure is given for it (`growth_text`). A section with
nothing to show says why instead of showing an empty table or chart.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from dagster_project.billing.money import currency_exponent

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


@dataclass
class ReportData:
    """Rows of the marts the report shows, as plain dicts."""

    through: str | None = None
    data_from: str | None = None  # the first arrival day loaded
    revenue_by_model: list[dict] = field(default_factory=list)  # revenue_month, currency, model, token_type, amount_cents
    gross_revenue: list[dict] = field(default_factory=list)  # month, currency, amount_cents, invoices_count
    invoiced_usage: list[dict] = field(default_factory=list)  # month, currency, code, amount_cents
    mrr: list[dict] = field(default_factory=list)  # month, currency, amount_cents
    top_customers: list[dict] = field(default_factory=list)  # currency, external_customer_id, revenue_cents, gross_revenue_cents
    credits: list[dict] = field(default_factory=list)  # month, currency, sold, consumed, outstanding...
    usage_growth: list[dict] = field(default_factory=list)  # month, model, token_type, units, previous, growth_rate


def _rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def collect(con) -> ReportData:
    """Read the analytics marts of an open DuckDB connection."""
    through = con.execute("select max(through) from billing.run_state").fetchone()[0]
    data_from = con.execute("select min(arrival_date) from marts.fct_event_loads where events_raw > 0").fetchone()[0]
    return ReportData(
        through=through.isoformat() if through else None,
        data_from=data_from.isoformat() if data_from else None,
        revenue_by_model=_rows(con, """
            select revenue_month::varchar as month, currency, model, token_type, sum(amount_cents)::bigint as amount_cents
            from marts.fct_revenue_monthly where fee_type = 'charge' group by all order by all"""),
        gross_revenue=_rows(con, """
            select month::varchar as month, currency, sum(amount_cents)::bigint as amount_cents,
                   sum(invoices_count)::bigint as invoices_count
            from marts.fct_gross_revenue group by all order by all"""),
        invoiced_usage=_rows(con, """
            select month::varchar as month, currency, code, amount_cents from marts.fct_invoiced_usage order by all"""),
        mrr=_rows(con, """
            select month::varchar as month, currency, sum(amount_cents)::bigint as amount_cents,
                   sum(amount_excluding_taxes_cents)::bigint as amount_excluding_taxes_cents
            from marts.fct_mrr group by all order by all"""),
        top_customers=_rows(con, """
            select currency, external_customer_id, sum(revenue_cents)::bigint as revenue_cents,
                   sum(usage_revenue_cents)::bigint as usage_revenue_cents,
                   sum(gross_revenue_cents)::bigint as gross_revenue_cents
            from marts.fct_top_customers group by all
            order by currency, revenue_cents desc, external_customer_id limit 20"""),
        credits=_rows(con, """
            select month::varchar as month, currency,
                   sum(paid_credits_sold_cents)::bigint as sold_cents,
                   sum(paid_credits_consumed_cents)::bigint as paid_consumed_cents,
                   sum(granted_credits_cents)::bigint as granted_cents,
                   sum(granted_credits_consumed_cents)::bigint as granted_consumed_cents,
                   sum(paid_credits_expired_cents + granted_credits_expired_cents
                       + paid_credits_voided_cents + granted_credits_voided_cents)::bigint as voided_or_expired_cents,
                   sum(paid_credits_outstanding_cents)::bigint as paid_outstanding_cents,
                   sum(granted_credits_outstanding_cents)::bigint as granted_outstanding_cents
            from marts.fct_prepaid_credits_monthly group by all order by all"""),
        # (ordered to the metric: rows of several metrics share the placeholders '(none)', '(none)')
        usage_growth=_rows(con, """
            select month::varchar as month, model, token_type, units, previous_month_units, growth_rate,
                   is_month_complete, is_previous_month_complete
            from marts.fct_usage_growth order by month, model, token_type, billable_metric_code"""),
    )


def _as_date(day: str | date) -> date:
    return day if isinstance(day, date) else date.fromisoformat(day)


def is_month_complete(month: str | date, through: str | date | None) -> bool:
    """A month is complete when the billing date `through` is on or after its last day; the month
    holding `through` is still open (unless `through` is its last day). With no billing date,
    nothing is billed and no month is complete. `month` is any day of the month (ISO text or date)."""
    if through is None:
        return False
    first = _as_date(month).replace(day=1)
    last = (first + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    return _as_date(through) >= last


def _billed(through: str | None) -> str:
    return f"billing through {through}" if through else "nothing billed yet"


def month_label_lines(month: str, through: str | None) -> list[str]:
    """`month_label` in lines, for a chart's axis."""
    label = _as_date(month).strftime("%Y-%m")
    if is_month_complete(month, through):
        return [label]
    return [label, "(incomplete,", f"through {through})" if through else "nothing billed yet)"]


def month_label(month: str, through: str | None) -> str:
    """'2026-10' for a complete month, '2026-11 (incomplete, through 2026-11-14)' for the open one."""
    return " ".join(month_label_lines(month, through))


def model_and_type(model: str, token_type: str) -> str:
    """'large input'; a placeholder both columns hold ('(unfiltered)', '(none)') is said once."""
    return model if model == token_type else f"{model} {token_type}"


def _growth_month_complete(row: dict, through: str | None) -> bool:
    """The mart's `is_month_complete` (which also knows when the events loaded begin), else the
    billing date alone."""
    return row["is_month_complete"] if row.get("is_month_complete") is not None else is_month_complete(row["month"], through)


def growth_month_label(row: dict, through: str | None, data_from: str | None) -> str:
    """A usage-growth month: as `month_label`, and '(incomplete, data from ...)' for a month before
    the month of the first arrival day (its billing periods began before any event was loaded)."""
    if is_month_complete(row["month"], through) and not _growth_month_complete(row, through):
        return f"{_as_date(row['month']):%Y-%m} (incomplete, data from {data_from})"
    return month_label(row["month"], through)


def growth_text(row: dict, through: str | None) -> str:
    """The growth cell of a usage-growth row: the mart's growth_rate as a percentage, or why there is
    none. Growth is computed only between two complete months: neither an open month nor a partial
    first month gets a figure, nor is one compared with. Percentages are rounded half-up (away from
    zero) to one decimal."""
    if not _growth_month_complete(row, through):
        return "not computed: month incomplete"
    if row["previous_month_units"] is None:
        return "first month"
    if row.get("is_previous_month_complete") is False:
        return "not computed: the month before is incomplete"
    if Decimal(row["previous_month_units"]) == 0:
        return "none the month before"
    return f"{(Decimal(row['growth_rate']) * 100).quantize(Decimal('0.1'), ROUND_HALF_UP):+}%"


def money(cents: int | None, currency: str) -> str:
    """Minor units as currency text, exactly: 123456 USD -> '1,234.56 USD'."""
    cents = int(cents or 0)
    exponent = currency_exponent(currency)
    amount = Decimal(cents).scaleb(-exponent)
    return f"{amount:,.{exponent}f} {currency}"


def tokens(units) -> str:
    return f"{Decimal(units or 0):,.0f}"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def bar_chart(title: str, categories: list[list[str]], series: dict[str, list[int]], currency: str,
              width: int = 720, height: int = 260) -> str:
    """Stacked vertical bars: one bar per category (month, its label in lines under the bar), one
    colour per series, as inline SVG."""
    left, bottom, top = 90, 40, 30
    extra = 11 * (max(len(lines) for lines in categories) - 1)  # label lines below the first
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    peak = max(totals + [1])
    plot_h = height - bottom - top
    slot = (width - left - 20) / max(len(categories), 1)
    bar_w = min(60, slot * 0.6)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + extra + 20 * ((len(series) + 2) // 3)}" '
             f'role="img" aria-label="{_e(title)}">',
             f'<text x="{left}" y="18" font-size="14" font-weight="bold">{_e(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#333"/>',
             f'<text x="{left - 6}" y="{top + 4}" font-size="10" text-anchor="end">{_e(money(peak, currency))}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>']
    for i, lines in enumerate(categories):
        category = " ".join(lines)
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for j, (name, values) in enumerate(series.items()):
            h = plot_h * values[i] / peak if values[i] > 0 else 0
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                         f'<title>{_e(category)} {_e(name)}: {_e(money(values[i], currency))}</title></rect>')
        for k, line in enumerate(lines):
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14 + 11 * k}" font-size="10" '
                         f'text-anchor="middle">{_e(line)}</text>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{max(y - 4, top - 2):.1f}" font-size="9" text-anchor="middle">'
                     f'{_e(money(totals[i], currency))}</text>')
    for j, name in enumerate(series):
        lx, ly = left + (j % 3) * 210, height + extra + 20 * (j // 3)
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
                     f'<text x="{lx + 14}" y="{ly}" font-size="11">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(title: str, labels: list[str], values: list[int], currency: str, width: int = 720) -> str:
    """Horizontal bars, largest first (the order given), as inline SVG."""
    left, row = 160, 24
    height = 30 + row * max(len(labels), 1)
    peak = max(values + [1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
             f'<text x="0" y="18" font-size="14" font-weight="bold">{_e(title)}</text>']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 28 + row * i
        w = (width - left - 140) * value / peak if value > 0 else 0
        parts.append(f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end">{_e(label)}</text>'
                     f'<rect x="{left}" y="{y}" width="{w:.1f}" height="18" fill="{PALETTE[0]}"/>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 14}" font-size="11">{_e(money(value, currency))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _why_empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _currencies(*groups: list[dict]) -> list[str]:
    return sorted({r["currency"] for g in groups for r in g})


def _currency_section(data: ReportData, currency: str) -> str:
    through, billed = data.through, _billed(data.through)

    def label(month: str) -> str:
        return month_label(month, through)

    def of(rows: list[dict]) -> list[dict]:
        return [r for r in rows if r["currency"] == currency]

    parts = [f"<h2>{_e(currency)}</h2>"]
    rev = of(data.revenue_by_model)
    if rev:
        months = sorted({r["month"] for r in rev})
        series: dict[str, list[int]] = defaultdict(lambda: [0] * len(months))
        for r in rev:
            series[model_and_type(r["model"], r["token_type"])][months.index(r["month"])] += int(r["amount_cents"])
        parts.append(bar_chart(f"Usage revenue by model and type ({currency})", [month_label_lines(m, through) for m in months],
                               dict(sorted(series.items())), currency))
        parts.append(_table(["month", "model and type", "revenue"],
                            [[label(r["month"]), model_and_type(r["model"], r["token_type"]), money(r["amount_cents"], currency)]
                             for r in rev]))
    else:
        parts.append(_why_empty(f"No usage revenue in {currency} yet: it appears once an invoice with usage charges is "
                                f"finalized ({billed})."))
    parts.append("<h3>Gross revenue, invoiced usage and MRR</h3>")
    gross, usage, mrr = of(data.gross_revenue), of(data.invoiced_usage), of(data.mrr)
    parts.append(_table(["month", "gross revenue", "invoices"],
                        [[label(r["month"]), money(r["amount_cents"], currency), r["invoices_count"]] for r in gross])
                 if gross else _why_empty(f"No finalized invoices in {currency} yet: gross revenue appears once an invoice is "
                                          f"finalized ({billed})."))
    parts.append(_table(["month", "metric", "invoiced usage"],
                        [[label(r["month"]), r["code"], money(r["amount_cents"], currency)] for r in usage])
                 if usage else _why_empty(f"No invoiced usage in {currency} yet: it appears once an invoice with usage charges is "
                                          f"finalized ({billed})."))
    parts.append(_table(["month", "MRR (taxes included)", "MRR before taxes"],
                        [[label(r["month"]), money(r["amount_cents"], currency), money(r["amount_excluding_taxes_cents"], currency)]
                         for r in mrr])
                 if mrr else _why_empty(f"No MRR in {currency}: no finalized invoice has a subscription fee ({billed})."))
    top = of(data.top_customers)
    if top:
        parts.append(hbar_chart(f"Top customers by invoiced revenue ({currency})", [r["external_customer_id"] for r in top],
                                [int(r["revenue_cents"]) for r in top], currency))
        parts.append(_table(["customer", "revenue (excl. taxes)", "of which usage", "gross revenue"],
                            [[r["external_customer_id"], money(r["revenue_cents"], currency),
                              money(r["usage_revenue_cents"], currency), money(r["gross_revenue_cents"], currency)]
                             for r in top]))
    else:
        parts.append(_why_empty(f"No customer revenue in {currency} yet: customers are ranked once an invoice with fees is "
                                f"finalized ({billed})."))
    credits = of(data.credits)
    if credits:
        cm = [month_label_lines(r["month"], through) for r in credits]
        parts.append(bar_chart(f"Prepaid credits outstanding at month end ({currency})", cm,
                               {"paid (liability)": [int(r["paid_outstanding_cents"]) for r in credits],
                                "granted": [int(r["granted_outstanding_cents"]) for r in credits]}, currency))
        parts.append(_table(["month", "paid sold", "paid consumed", "granted", "granted consumed", "voided or expired",
                             "paid outstanding", "granted outstanding"],
                            [[label(r["month"])] + [money(r[k], currency) for k in (
                                "sold_cents", "paid_consumed_cents", "granted_cents", "granted_consumed_cents",
                                "voided_or_expired_cents", "paid_outstanding_cents", "granted_outstanding_cents")]
                             for r in credits]))
    else:
        parts.append(_why_empty(f"No prepaid credits sold or granted in {currency}."))
    return "\n".join(parts)


def _growth_section(data: ReportData) -> str:
    parts = ["<h2>Usage growth</h2>"]
    if not data.usage_growth:
        parts.append(_why_empty(f"No usage yet ({_billed(data.through)})."))
        return "".join(parts)
    complete = [r for r in data.usage_growth if _growth_month_complete(r, data.through)]
    # growth needs a complete month whose month before is complete too
    if all(r["previous_month_units"] is None or r.get("is_previous_month_complete") is False for r in complete):
        so_far = ", ".join(sorted({month_label(r["month"], data.through) for r in complete})) or "none"
        since = f"; events loaded from {data.data_from}" if data.data_from else ""
        parts.append(_why_empty(f"Growth needs two complete months; complete so far: {so_far} "
                                f"({_billed(data.through)}{since})."))
    parts.append(_table(
        ["month", "model and type", "tokens", "month before", "growth"],
        [[growth_month_label(r, data.through, data.data_from), model_and_type(r["model"], r["token_type"]), tokens(r["units"]),
          "-" if r["previous_month_units"] is None else tokens(r["previous_month_units"]), growth_text(r, data.through)]
         for r in data.usage_growth]))
    return "".join(parts)


def render(data: ReportData) -> str:
    """The report as one HTML document (UTF-8, no external resource)."""
    currencies = _currencies(data.revenue_by_model, data.gross_revenue, data.credits, data.top_customers)
    sections = [_currency_section(data, currency) for currency in currencies] or [
        "<h2>Revenue</h2>" + _why_empty(f"No finalized invoices yet: revenue appears once an invoice is finalized "
                                        f"({_billed(data.through)}).") + _why_empty("No prepaid credits sold or granted.")]
    sections.append(_growth_section(data))
    body = "\n".join(sections)
    open_month = ""
    if data.through and not is_month_complete(data.through, data.through):
        open_month = (f"\n<p>{_as_date(data.through):%Y-%m} is still open (billed through {_e(data.through)}): it is "
                      f"marked incomplete wherever it appears and has no month-over-month growth.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Meterhouse revenue report</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; font-size: 13px; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
svg {{ display: block; margin: 1em 0; }}
p.empty {{ color: #555; font-style: italic; }}
</style></head><body>
<h1>Revenue report</h1>
<p>Billed through {_e(data.through or "-")}. Finalized invoices only; revenue excludes taxes unless stated; amounts in each
currency's units. Gross revenue, invoiced usage and MRR follow Lago's analytics definitions (see the marts' documentation).</p>{open_month}
{body}
</body></html>
"""
