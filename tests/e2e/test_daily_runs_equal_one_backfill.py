"""Which events an invoice holds is decided by the data, not by how the days were grouped into runs.

The New York scenario is billed twice: once in daily steps on one warehouse (through 10-31, then
11-01, then 11-05), with a file dropped into the 2026-11-01 folder after the 11-01 run; and once
in a single run on a fresh warehouse with every file present. The outputs must be byte-identical.
The 11-01 run must not freeze October: that day's folder was still open (its file came later).
"""

import json
import shutil

from tests.conftest import REPO, run_meterhouse

SCENARIO = REPO / "tests" / "scenarios" / "new_york_month_end"
LATE_IN_THE_DAY = (
    '{"event": {"transaction_id": "tx21", "code": "mistral_tokens", "external_subscription_id": "sub_ny", '
    '"timestamp": "2026-10-31T20:00:00Z", "properties": {"tokens": 1000000, "model": "mistral-large", "type": "output"}}}\n'
)


def run(work, through):
    run_meterhouse(SCENARIO / "catalog", work / "events", work, through)


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_daily_runs_and_a_late_file_in_an_open_folder_equal_one_fresh_run(tmp_path):
    daily, fresh = tmp_path / "daily", tmp_path / "fresh"
    shutil.copytree(SCENARIO / "events", daily / "events")
    run(daily, "2026-10-31")
    run(daily, "2026-11-01")
    october = json.loads((daily / "out" / "run_summary.json").read_text())
    assert october["invoices_draft"] == 1  # October waits for its finalization day to end
    (daily / "events" / "2026-11-01").mkdir()
    (daily / "events" / "2026-11-01" / "evening.jsonl").write_text(LATE_IN_THE_DAY)
    run(daily, "2026-11-05")

    shutil.copytree(daily / "events", fresh / "events")
    run(fresh, "2026-11-05")

    assert snapshot(daily / "out") == snapshot(fresh / "out")
    invoices = [json.loads(p.read_text())["invoice"] for p in sorted((fresh / "out" / "invoices").glob("*.json"))]
    # On Nov 1 the ongoing balance is 26 - (October 10 + 12 + November 12) = -8 <= 2: a third top-up
    # (MTH-001-004), so October's invoice is MTH-001-005 and holds the evening's 1,000,000 large
    # output tokens: 1 package * $12 on top of $10.
    assert [(i["number"], i["invoice_type"], i["fees_amount_cents"]) for i in invoices] == [
        ("MTH-001-001", "credit", 500),
        ("MTH-001-002", "credit", 1000),
        ("MTH-001-003", "credit", 1000),
        ("MTH-001-004", "credit", 1000),
        ("MTH-001-005", "subscription", 2200),
        # Nov 2: 36 credits bought or granted so far pay the $22 invoice: 14 left, ongoing 14 - 12 = 2
        # <= 2: a fourth top-up
        ("MTH-001-006", "credit", 1000),
    ]
