"""Usage that no charge prices, said out loud: on the invoice line, in the run summary, as warnings.

Events in a charge's default bucket (they match none of its filters) are priced with the charge's
own `properties`; a charge without them bills that usage nothing. `marts.fct_unpriced_usage` lists
it; these pure functions name it for people. Pricing names the invoice line (`unpriced_label`) and
keeps the name with the fee, so a finalized invoice's line keeps its name whatever the catalog
becomes.
"""

from __future__ import annotations

import json
from decimal import Decimal

# Warnings printed for one run at most; the mart and the summary hold every row.
MAX_WARNINGS = 20


def values_text(filter_values: dict[str, str]) -> str:
    """`model codestral, type input`; `no filter values` for events without any."""
    return ", ".join(f"{key} {value}" for key, value in sorted(filter_values.items())) or "no filter values"


def unpriced_label(combinations: list[dict[str, str]]) -> str:
    """The name of a default-bucket line that no price applies to: its filter values (each
    combination's values joined by " • ", as filter names are), then "(not priced)"."""
    names = sorted({" • ".join(v for _, v in sorted(c.items())) or "no filter values" for c in combinations})
    return f"{'; '.join(names) or 'other values'} (not priced)"


def summary_entries(rows: list[dict]) -> list[dict]:
    """Per subscription, metric and filter values: the units and events no charge prices, from the
    mart's rows (`external_subscription_id`, `billable_metric_code`, `filter_values_json`, `units`,
    `events_count`), in that order."""
    totals: dict[tuple[str, str, str], list] = {}
    for r in rows:
        key = (r["external_subscription_id"], r["billable_metric_code"], r["filter_values_json"])
        total = totals.setdefault(key, [Decimal(0), 0])
        total[0] += Decimal(r["units"])
        total[1] += r["events_count"]
    return [
        {"external_subscription_id": sub, "billable_metric_code": code, "filter_values": json.loads(values),
         "units": format(units.normalize(), "f"), "events_count": events}
        for (sub, code, values), (units, events) in sorted(totals.items())
    ]


def warnings(entries: list[dict]) -> list[str]:
    """One line per summary entry (at most `MAX_WARNINGS`, then how many more)."""
    lines = [
        f"{Decimal(e['units']):,f} units of {e['billable_metric_code']} on {e['external_subscription_id']} "
        f"({values_text(e['filter_values'])}, {e['events_count']:,} event{'s' if e['events_count'] != 1 else ''}) match "
        f"no charge filter and the charge "
        f"has no price of its own: billed nothing (marts.fct_unpriced_usage)"
        for e in entries[:MAX_WARNINGS]
    ]
    if len(entries) > MAX_WARNINGS:
        lines.append(f"... and {len(entries) - MAX_WARNINGS:,} more unpriced usage rows (marts.fct_unpriced_usage)")
    return lines
