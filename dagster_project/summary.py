"""Print a short, human summary of a billed warehouse: `python -m dagster_project.summary WAREHOUSE OUT`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

from dagster_project.billing.money import format_money


def summarize(warehouse: Path, out_dir: Path) -> str:
    con = duckdb.connect(str(warehouse), read_only=True)
    lines = []
    summary = json.loads((out_dir / "run_summary.json").read_text())
    lines.append(
        f"Billed through {summary['through']}: {summary['events_raw']} events read, "
        f"{summary['events_accepted']} accepted, {summary['events_duplicate']} duplicates, "
        f"{summary['events_rejected']} rejected, {summary['events_late']} late."
    )
    lines.append("\nInvoices (marts.fct_invoices):")
    for number, kind, status, customer, start, end, fees, taxes, credits, total, cur in con.execute(
        """select number, invoice_type, status, external_customer_id, period_start_date, period_end_date,
                  fees_amount_cents, taxes_amount_cents, prepaid_credit_amount_cents + credit_notes_amount_cents,
                  total_amount_cents, currency
           from marts.fct_invoices order by number"""
    ).fetchall():
        period = f"{start} to {end}" if start else "prepaid credits"
        lines.append(
            f"  {number:<14} {kind:<12} {status:<9} {customer:<8} {period:<26} fees {format_money(fees, cur):>12}"
            f"  taxes {format_money(taxes, cur):>10}"
            f"  credits -{format_money(credits, cur):>11}  due {format_money(total, cur):>12}"
        )
    lines.append("\nCurrent usage (open periods, marts.fct_usage_by_model_and_type):")
    for sub, model, ttype, units in con.execute(
        """select u.external_subscription_id, u.model, u.token_type, sum(u.units)
           from marts.fct_usage_by_model_and_type u
           where u.billing_period_id in (select billing_period_id from billing.current_usage)
           group by all order by 1, 2, 3"""
    ).fetchall():
        lines.append(f"  {sub:<10} {model or '-':<15} {ttype or '-':<7} {int(units):>12,} tokens")
    lines.append("\nWallets:")
    for path in sorted((out_dir / "wallets").glob("*.json")):
        w = json.loads(path.read_text())["wallet"]
        lines.append(
            f"  {w['external_customer_id']:<8} {w['name'] or '':<16} balance {w['credits_balance']:>10} credits, "
            f"ongoing {w['credits_ongoing_balance']:>10} credits ({w['status']})"
        )
    lines.append(f"\nFiles in {out_dir}; query the marts with: duckdb {warehouse}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]), Path(sys.argv[2])))
