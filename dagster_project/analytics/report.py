"""The revenue report: one static HTML page, charts drawn as inline SVG (no script, no network).

`collect(con)` reads the analytics marts (`marts.fct_*`, see dbt_project/models/marts/analytics)
into a `ReportData`; `render(data)` turns it into HTML. Both are pure apart from the queries, so
the page is byte-stable for the same warehouse. Amounts stay integer minor units until they are
formatted for display.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from dagster_project.billing.money import currency_exponent

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


@dataclass
class ReportData:
    """Rows of the marts the report shows, as plain dicts."""

    through: str | None = None
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
    return ReportData(
        through=through.isoformat() if through else None,
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
        usage_growth=_rows(con, """
            select month::varchar as month, model, token_type, units, previous_month_units, growth_rate
            from marts.fct_usage_growth order by month, model, token_type"""),
    )


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


def bar_chart(title: str, categories: list[str], series: dict[str, list[int]], currency: str,
              width: int = 720, height: int = 260) -> str:
    """Stacked vertical bars: one bar per category (month), one colour per series, as inline SVG."""
    left, bottom, top = 90, 40, 30
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    peak = max(totals + [1])
    plot_h = height - bottom - top
    slot = (width - left - 20) / max(len(categories), 1)
    bar_w = min(60, slot * 0.6)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20 * ((len(series) + 2) // 3)}" '
             f'role="img" aria-label="{_e(title)}">',
             f'<text x="{left}" y="18" font-size="14" font-weight="bold">{_e(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#333"/>',
             f'<text x="{left - 6}" y="{top + 4}" font-size="10" text-anchor="end">{_e(money(peak, currency))}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>']
    for i, category in enumerate(categories):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for j, (name, values) in enumerate(series.items()):
            h = plot_h * values[i] / peak if values[i] > 0 else 0
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                         f'<title>{_e(category)} {_e(name)}: {_e(money(values[i], currency))}</title></rect>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">{_e(category)}</text>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{max(y - 4, top - 2):.1f}" font-size="9" text-anchor="middle">'
                     f'{_e(money(totals[i], currency))}</text>')
    for j, name in enumerate(series):
        lx, ly = left + (j % 3) * 210, height + 20 * (j // 3)
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


def _currencies(*groups: list[dict]) -> list[str]:
    return sorted({r["currency"] for g in groups for r in g})


def render(data: ReportData) -> str:
    """The report as one HTML document (UTF-8, no external resource)."""
    sections = []
    for currency in _currencies(data.revenue_by_model, data.gross_revenue, data.credits, data.top_customers):
        rev = [r for r in data.revenue_by_model if r["currency"] == currency]
        months = sorted({r["month"] for r in rev})
        series: dict[str, list[int]] = defaultdict(lambda: [0] * len(months))
        for r in rev:
            series[f"{r['model']} {r['token_type']}"][months.index(r["month"])] += int(r["amount_cents"])
        parts = [f"<h2>{_e(currency)}</h2>"]
        if rev:
            parts.append(bar_chart(f"Usage revenue by model and type ({currency})", months, dict(sorted(series.items())), currency))
            parts.append(_table(["month", "model", "type", "revenue"],
                                [[r["month"], r["model"], r["token_type"], money(r["amount_cents"], currency)] for r in rev]))
        gross = [r for r in data.gross_revenue if r["currency"] == currency]
        usage = [r for r in data.invoiced_usage if r["currency"] == currency]
        mrr = [r for r in data.mrr if r["currency"] == currency]
        parts.append("<h3>Gross revenue, invoiced usage and MRR</h3>")
        parts.append(_table(["month", "gross revenue", "invoices"],
                            [[r["month"], money(r["amount_cents"], currency), r["invoices_count"]] for r in gross]))
        parts.append(_table(["month", "metric", "invoiced usage"],
                            [[r["month"], r["code"], money(r["amount_cents"], currency)] for r in usage]))
        parts.append(_table(["month", "MRR (taxes included)", "MRR before taxes"],
                            [[r["month"], money(r["amount_cents"], currency), money(r["amount_excluding_taxes_cents"], currency)]
                             for r in mrr]))
        top = [r for r in data.top_customers if r["currency"] == currency]
        if top:
            parts.append(hbar_chart(f"Top customers by invoiced revenue ({currency})", [r["external_customer_id"] for r in top],
                                    [int(r["revenue_cents"]) for r in top], currency))
            parts.append(_table(["customer", "revenue (excl. taxes)", "of which usage", "gross revenue"],
                                [[r["external_customer_id"], money(r["revenue_cents"], currency),
                                  money(r["usage_revenue_cents"], currency), money(r["gross_revenue_cents"], currency)]
                                 for r in top]))
        credits = [r for r in data.credits if r["currency"] == currency]
        if credits:
            cm = [r["month"] for r in credits]
            parts.append(bar_chart(f"Prepaid credits outstanding at month end ({currency})", cm,
                                   {"paid (liability)": [int(r["paid_outstanding_cents"]) for r in credits],
                                    "granted": [int(r["granted_outstanding_cents"]) for r in credits]}, currency))
            parts.append(_table(["month", "paid sold", "paid consumed", "granted", "granted consumed", "voided or expired",
                                 "paid outstanding", "granted outstanding"],
                                [[r["month"]] + [money(r[k], currency) for k in (
                                    "sold_cents", "paid_consumed_cents", "granted_cents", "granted_consumed_cents",
                                    "voided_or_expired_cents", "paid_outstanding_cents", "granted_outstanding_cents")]
                                 for r in credits]))
        sections.append("\n".join(parts))
    if data.usage_growth:
        sections.append("<h2>Usage growth</h2>" + _table(
            ["month", "model", "type", "tokens", "month before", "growth"],
            [[r["month"], r["model"], r["token_type"], tokens(r["units"]),
              "" if r["previous_month_units"] is None else tokens(r["previous_month_units"]),
              "" if r["growth_rate"] is None else f"{Decimal(r['growth_rate']) * 100:+.1f}%"] for r in data.usage_growth]))
    body = "\n".join(sections) or "<p>Nothing invoiced yet.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Meterhouse revenue report</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; font-size: 13px; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
svg {{ display: block; margin: 1em 0; }}
</style></head><body>
<h1>Revenue report</h1>
<p>Billed through {_e(data.through or "-")}. Finalized invoices only; revenue excludes taxes unless stated; amounts in each
currency's units. Gross revenue, invoiced usage and MRR follow Lago's analytics definitions (see the marts' documentation).</p>
{body}
</body></html>
"""
