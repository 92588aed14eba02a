"""`meterhouse run` on a hand-made month in America/New_York, every figure worked out by hand.

The scenario (tests/scenarios/new_york_month_end): the seed's Mistral plan (package pricing per
1M tokens: small input $1, small output $3, large input $4, large output $12), one customer in
New York, one wallet (1 granted + 5 paid credits, created 2026-10-01, threshold rule: at 2 credits
or less buy 10 paid credits), billed through 2026-11-05.

Arrivals:
- 2026-10-10: tx1 small/input 1,500,000 (Unix int); tx2 small/output "500000" (numeric string,
  ISO timestamp); tx3 large/input 250,000 (timestamp "1791644400.5"); tx1 again (duplicate);
  a truncated line (invalid_json); tx10 for sub_unknown (unknown_subscription); tx8 tokens "lots"
  (invalid_field_value).
- 2026-10-31: tx4 small/input 600,000 at 2026-11-01T02:00Z = Oct 31 22:00 EDT: October;
  tx5 large/output 100,000 at 2026-11-01T05:00Z = Nov 1 00:00 EST... 01:00 EDT: November.
- 2026-11-02: tx6 small/input 900,001 for Oct 20: late (October was finalized on Nov 1);
  tx7 medium/input 50,000 for November: no filter prices medium, so the default bucket (no amount).

October invoice (finalized 2026-11-01, grace 0):
  small input  1,500,000 + 600,000 = 2,100,000 -> ceil(2.1) = 3 packages * $1 = $3.00
  small output   500,000                     -> 1 package  * $3 = $3.00
  large input    250,000                     -> 1 package  * $4 = $4.00       total $10.00
Late: with tx6 small input would be 3,000,001 -> 4 packages: $1.00 more (reported, not billed).

Wallet, day by day (ongoing = balance - unfinalized usage):
  Oct 1  created: +1 granted, +5 paid (credit invoice MTH-001-001, $5)      balance 6
  Oct 10 usage $2 + $3 + $4 = $9: ongoing 6 - 9 = -3 <= 2: +10 paid (MTH-001-002) balance 16, ongoing 7
  Oct 31 October $10 (small input now 3 packages) + November $12: ongoing 16 - 22 = -6: +10 paid
         (MTH-001-003), balance 26, ongoing 4
  Nov 1  October's finalization day (its folder may still receive October events): the invoice
         is frozen by the first run after it, and paid on Nov 2 by 1 granted + 9 paid credits
         (MTH-001-004, $10, issuing date Nov 1): balance 16; ongoing 16 - 12 = 4 > 2: no top-up.
  Through Nov 5: balance 16 credits (1600 cents), ongoing usage 1200, ongoing balance 4 credits.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import OPENAPI, REPO, assert_lago_schemas

SCENARIO = REPO / "tests" / "scenarios" / "new_york_month_end"


@pytest.fixture(scope="module")
def billed(new_york_billed):
    """`meterhouse run` through 2026-11-05 on a fresh warehouse, then the same command again: (work
    folder, outputs after the first run, outputs after the second); shared with test_kill_and_rerun."""
    return new_york_billed


def load(work: Path, relative: str) -> dict:
    return json.loads((work / "out" / relative).read_text())


def test_the_run_summary_accounts_for_every_event(billed):
    work, _, _ = billed
    summary = load(work, "run_summary.json")
    # 7 + 2 + 2 lines; tx1 twice; three rejected; tx6 arrived after October was finalized
    assert summary["events_raw"] == 11
    assert summary["events_accepted"] == 7
    assert summary["events_duplicate"] == 1
    assert summary["events_rejected"] == 3
    assert summary["events_late"] == 1
    assert summary["rejected_by_reason"] == {"invalid_json": 1, "unknown_subscription": 1, "invalid_field_value": 1}
    assert summary["late_amount_cents"] == 100


def test_october_invoice_bills_each_model_and_type_by_the_package(billed):
    work, _, _ = billed
    invoice = load(work, "invoices/MTH-001-004.json")["invoice"]
    assert invoice["invoice_type"] == "subscription"
    assert invoice["status"] == "finalized"
    assert invoice["issuing_date"] == "2026-11-01"
    fees = {f["item"]["filter_invoice_display_name"]: f for f in invoice["fees"]}
    assert {name: (f["units"], f["events_count"], f["amount_cents"]) for name, f in fees.items()} == {
        "mistral-small-input": ("2100000.0", 2, 300),
        "mistral-small-output": ("500000.0", 1, 300),
        "mistral-large-input": ("250000.0", 1, 400),
    }
    assert invoice["fees_amount_cents"] == 1000
    assert invoice["taxes_amount_cents"] == 0
    assert invoice["sub_total_including_taxes_amount_cents"] == 1000
    assert invoice["prepaid_granted_credit_amount_cents"] == 100
    assert invoice["prepaid_purchased_credit_amount_cents"] == 900
    assert invoice["prepaid_credit_amount_cents"] == 1000
    assert invoice["total_amount_cents"] == 0
    # The period is October in New York: midnight EDT is 04:00 UTC at both ends.
    period = invoice["billing_periods"][0]
    assert period["charges_from_datetime"] == "2026-10-01T04:00:00Z"
    assert period["charges_to_datetime"] == "2026-11-01T03:59:59Z"


def test_paid_credits_are_sold_on_credit_invoices_numbered_without_gaps(billed):
    work, _, _ = billed
    files = sorted(p.name for p in (work / "out" / "invoices").iterdir())
    assert files == ["MTH-001-001.json", "MTH-001-002.json", "MTH-001-003.json", "MTH-001-004.json"]
    credits = [load(work, f"invoices/MTH-001-00{n}.json")["invoice"] for n in (1, 2, 3)]
    assert [(c["invoice_type"], c["issuing_date"], c["total_amount_cents"]) for c in credits] == [
        ("credit", "2026-10-01", 500),
        ("credit", "2026-10-10", 1000),
        ("credit", "2026-10-31", 1000),
    ]


def test_the_wallet_balance_and_ongoing_balance(billed):
    work, _, _ = billed
    (wallet_file,) = (work / "out" / "wallets").iterdir()
    wallet = json.loads(wallet_file.read_text())["wallet"]
    assert wallet["balance_cents"] == 1600
    assert wallet["credits_balance"] == "16.00000"
    assert wallet["consumed_credits"] == "10.00000"
    assert wallet["ongoing_usage_balance_cents"] == 1200
    assert wallet["ongoing_balance_cents"] == 400
    assert wallet["credits_ongoing_balance"] == "4.00000"
    assert wallet["status"] == "active"


def test_the_wallet_ledger_records_each_top_up_once(billed):
    work, _, _ = billed
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    ledger = con.execute(
        """select transaction_date::varchar, transaction_type, source, granted_amount_cents, paid_amount_cents,
                  balance_after_cents from marts.fct_wallet_transactions order by sequence"""
    ).fetchall()
    assert ledger == [
        ("2026-10-01", "inbound", "wallet_creation", 100, 0, 100),
        ("2026-10-01", "inbound", "wallet_creation", 0, 500, 600),
        ("2026-10-10", "inbound", "threshold_top_up", 0, 1000, 1600),
        ("2026-10-31", "inbound", "threshold_top_up", 0, 1000, 2600),
        ("2026-11-02", "outbound", "invoice_payment", 100, 900, 1600),
    ]


def test_current_usage_shows_november_with_the_unpriced_default_bucket(billed):
    work, _, _ = billed
    usage = load(work, "current_usage/sub_ny.json")["customer_usage"]
    assert usage["from_datetime"] == "2026-11-01T04:00:00Z"
    assert usage["amount_cents"] == 1200  # large output 100,000 -> 1 package * $12
    (charge,) = usage["charges_usage"]
    by_filter = {f.get("invoice_display_name"): (f["units"], f["amount_cents"]) for f in charge["filters"]}
    assert by_filter == {"mistral-large-output": ("100000.0", 1200), None: ("50000.0", 0)}


def test_rejected_events_are_quarantined_with_file_line_and_field(billed):
    work, _, _ = billed
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    rows = con.execute(
        "select source_file, line_number, rejection_reason, rejection_detail from marts.fct_events_rejected order by 2"
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("2026-10-10/api.jsonl", 5, "invalid_json"),
        ("2026-10-10/api.jsonl", 6, "unknown_subscription"),
        ("2026-10-10/api.jsonl", 7, "invalid_field_value"),
    ]
    assert rows[2][3] == "field properties.tokens: 'lots' is not a number"
    late = con.execute("select transaction_id, arrival_date::varchar from marts.fct_late_events").fetchall()
    assert late == [("tx6", "2026-11-02")]


def test_running_the_same_command_twice_changes_no_output_byte(billed):
    _, first, second = billed
    assert first.keys() == second.keys()
    assert first == second


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_outputs_validate_against_lagos_openapi_schemas(billed):
    work, _, _ = billed
    assert_lago_schemas(work / "out")


def test_dbt_unit_tests_for_dedupe_filter_matching_growth_and_wallet_days_pass(billed, tmp_path):
    """dbt's own unit tests (excluded from orchestrated runs) run here, on a copy of this warehouse."""
    import os

    from dagster_project.defs.dbt import DBT_DIR

    work, _, _ = billed
    warehouse = tmp_path / "warehouse.duckdb"  # the same file name: DuckDB names its catalog after it
    shutil.copy(work / "warehouse.duckdb", warehouse)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "test", "--select", "test_type:unit",
         "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR), "--target-path", str(tmp_path / "target")],
        capture_output=True, text=True, env={**os.environ, "METERHOUSE_WAREHOUSE": str(warehouse)},
    )
    assert result.returncode == 0, result.stdout[-3000:]
    for name in ("the_first_arrival_wins_across_days_and_files",
                 "events_are_aggregated_per_charge_and_dimensions_with_the_most_specific_filter",
                 "a_late_event_keeps_its_own_row_and_on_time_ones_add_up",
                 "growth_is_computed_only_between_two_complete_months",
                 "a_wallets_days_hold_its_movements_balances_and_pending_credits"):
        assert re.search(rf"PASS \S+::{name} ", result.stdout), name
