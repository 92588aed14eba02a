"""Digests of what a scenario run publishes: every output file and every mart, for the golden test.

`tests/golden/outputs.json` was recorded with this module at commit 642f2b3 (the end of issue #20 and the revenue report's order fixed,
before the one-pass event path of issue #21), and recorded again once, in session 12, for one intended
change: `marts.fct_unpriced_usage.unpriced_usage_id` hashes the dimension values as `a|<null>|b` (the
macro `list_text`, the same bytes on DuckDB and Spark) instead of DuckDB's `list::varchar`, which
quotes some values. That changed the digest of that mart in three runs (corrections twice,
new_york_month_end once) and nothing else; the marts added since (`fct_duplicate_events`,
`fct_fee_lines`) were recorded with it. In session 13 the manifest was recorded once more to add
new files only: each wallet's `wallet_transactions/<id>.json` (issue #22) and the coupon marts
(`fct_applied_coupons`, `fct_coupon_credits`); every digest recorded before was compared and found
unchanged (a script compared the two manifests key by key):

    .venv/bin/python -m tests.golden.digests record

In session 15, every_charge_model's second run was re-recorded for one intended change, and only
the digests it moved: sub_h's percentage charge with per-transaction bounds is priced as lago-api
prices it (2.70 instead of 5.70, see tests/e2e/test_every_charge_model.py), which changes its
invoice MTH-008-001 (JSON, HTML, PDF), the revenue report, the run summary's invoiced total and the
marts that sum its fee (fct_fees, fct_fee_lines, fct_invoices, fct_invoiced_usage,
fct_revenue_daily, fct_revenue_monthly, fct_daily_revenue_by_model_and_type, fct_gross_revenue,
fct_top_customers). A script billed the scenario with `bill`, checked that exactly these digests
differed from the manifest (the first run's none), and replaced only them.

In session 22, the wallet files' digests only, for one intended change: a wallet's
`last_balance_sync_at` is the day its balance last changed (its last settled transaction), as
lago-api stamps it in `Wallets::Balance::IncreaseService` and `DecreaseService`, instead of the
billing date (so a wallet whose balance and ongoing usage did not move keeps its file from day to
day). A script billed every scenario with `bill` and checked that only `wallets/*.json` digests
differed from the manifest (no other file, no mart), and replaced only them (16 digests).

`tests/e2e/test_golden_outputs.py` bills the same runs with the code of today and compares. A digest
is a SHA-256: of a file's bytes, and of a mart's rows written as CSV (all columns, in the mart's
column order, rows sorted), so a changed figure, a changed column or a changed row shows, and the
test names the file or the mart that differs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFEST = Path(__file__).with_name("outputs.json")

# Each scenario billed twice on one warehouse: through the first date (a fresh build), then through
# the second (an incremental run over the days that arrived since), with its payments file if any.
RUNS = {
    "analytics": ("2026-10-20", "2026-12-02"),
    "corrections": ("2026-10-20", "2026-11-12"),
    "eu_vat": ("2026-11-02", "2026-11-05"),
    "every_charge_model": ("2026-10-01", "2026-11-02"),
    "new_york_month_end": ("2026-10-31", "2026-11-05"),
    "period_rules": ("2026-10-20", "2026-11-02"),
    "wallets": ("2026-10-05", "2026-11-03"),
}


# Columns added to a recorded mart since: left out of its digest (when recording and when comparing),
# so the columns recorded must still hold the same rows, while a catalog using the feature behind a
# new column is tested by that feature's own tests. Session 15: fct_invoices' coupons_amount_cents
# (0 on every invoice of these scenarios, which have no coupons).
COLUMNS_ADDED_SINCE = {"fct_invoices": ("coupons_amount_cents",)}


def file_digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def mart_digests(warehouse: Path) -> dict[str, str]:
    import duckdb

    digests = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        marts = [name for (name,) in con.sql(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1").fetchall()]
        for name in marts:
            columns = [c for (c,) in con.sql(
                "select column_name from information_schema.columns where table_schema = 'marts' and table_name = ? "
                "order by ordinal_position", params=[name]).fetchall() if c not in COLUMNS_ADDED_SINCE.get(name, ())]
            header = ",".join(columns)
            selected = ", ".join('"' + c + '"' for c in columns)
            rows = con.sql(f'select {selected} from marts."{name}"').fetchall()
            text = "\n".join([header, *sorted(",".join("" if v is None else repr(v) for v in row) for row in rows)])
            digests[name] = hashlib.sha256(text.encode()).hexdigest()
    return digests


def bill(scenario: str, work: Path) -> dict[str, dict]:
    """Bill `scenario` through both its dates on one fresh warehouse under `work`: the digests after each run."""
    from tests.conftest import run_meterhouse

    source = REPO / "tests" / "scenarios" / scenario
    shutil.copytree(source / "events", work / "events")
    payments = source / "payments" if (source / "payments").is_dir() else None
    states = {}
    for through in RUNS[scenario]:
        out = run_meterhouse(source / "catalog", work / "events", work, through, payments=payments)
        states[through] = {"files": file_digests(out), "marts": mart_digests(work / "warehouse.duckdb")}
    return states


def record() -> None:
    manifest = {}
    for scenario in RUNS:
        with tempfile.TemporaryDirectory() as work:
            manifest[scenario] = bill(scenario, Path(work))
            print(scenario, {k: len(v["files"]) for k, v in manifest[scenario].items()}, file=sys.stderr)
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["record"]:
        sys.exit("usage: python -m tests.golden.digests record")
    record()
