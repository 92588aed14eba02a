"""`meterhouse run` on metrics with Lago expressions (issue #24, feature 6); every figure by hand.

Scenario tests/scenarios/expressions: customer acme (USD, UTC), subscription sub_acme on plan llm_api
from 2026-10-01 (calendar months, no subscription fee), billed through 2026-11-02.

- llm_tokens (sum of `event.properties.input_tokens + event.properties.cached_tokens * 0.1`), at
  0.00002 USD a token:
    t1 100,000 + 50,000 * 0.1 = 105,000; t2 200,000 + 0 = 200,000; t3 "1000" + "5" * 0.1 = 1,000.5
    t4 has no cached_tokens: quarantined (expression_evaluation_failed), not billed
    t1 again on Oct 20: a duplicate, not billed
    305,000 + 1,000.5 = 306,000.5 tokens * 0.00002 = 6.12001 USD -> 6.12
- gpu_hours (sum of `round(event.properties.duration_ms / 3600000, 2)`), at 2.50 USD an hour:
    t5 5,400,000 ms = 1.5 h; t6 1,000,000 ms = 0.2777... h, rounded half-up to 2 places: 0.28 h
    t7 duration_ms "unknown": quarantined
    1.5 + 0.28 = 1.78 h * 2.50 = 4.45 USD
- October's invoice (issued 2026-11-01): 6.12 + 4.45 = 10.57 USD.
- November so far (t8 on Nov 2): 3,000 + 1,000 * 0.1 = 3,100 tokens * 0.00002 = 0.062 USD -> 6 cents.
- Events: 9 raw = 6 accepted + 1 duplicate + 2 rejected.
"""

import json

import duckdb
import pytest

from tests.conftest import OPENAPI, assert_lago_schemas, run_meterhouse, snapshot

SCENARIO = "expressions"


@pytest.fixture(scope="module")
def billed(tmp_path_factory):
    """The scenario billed twice with the same command: (work folder, first outputs, second outputs)."""
    import shutil

    from tests.conftest import REPO

    source = REPO / "tests" / "scenarios" / SCENARIO
    work = tmp_path_factory.mktemp(SCENARIO)
    shutil.copytree(source / "events", work / "events")
    out = run_meterhouse(source / "catalog", work / "events", work, "2026-11-02")
    first = snapshot(out)
    run_meterhouse(source / "catalog", work / "events", work, "2026-11-02")
    return work, first, snapshot(out)


def test_octobers_invoice_bills_the_expressions_values_worked_out_by_hand(billed):
    work, _, _ = billed
    (path,) = (work / "out" / "invoices").glob("*.json")
    invoice = json.loads(path.read_text())["invoice"]
    assert (invoice["issuing_date"], invoice["total_amount_cents"]) == ("2026-11-01", 1057)
    fees = {f["item"]["code"]: (f["units"], f["events_count"], f["precise_amount"], f["amount_cents"])
            for f in invoice["fees"]}
    assert fees == {"llm_tokens": ("306000.5", 3, "6.12001", 612), "gpu_hours": ("1.78", 2, "4.45", 445)}


def test_november_usage_so_far_is_priced_on_the_expression(billed):
    work, _, _ = billed
    usage = json.loads((work / "out" / "current_usage" / "sub_acme.json").read_text())["customer_usage"]
    charges = {c["billable_metric"]["code"]: (c["units"], c["amount_cents"]) for c in usage["charges_usage"]}
    assert charges["llm_tokens"] == ("3100.0", 6)


def test_events_the_expression_cannot_be_evaluated_on_are_quarantined_and_accounted_for(billed):
    work, _, _ = billed
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    rejected = con.execute("""select source_file, line_number, rejection_reason, rejection_detail
                              from marts.fct_events_rejected order by all""").fetchall()
    assert rejected == [
        ("2026-10-15/events.jsonl", 4, "expression_evaluation_failed",
         "field properties.cached_tokens: missing (expression of metric 'llm_tokens': "
         "event.properties.input_tokens + event.properties.cached_tokens * 0.1)"),
        ("2026-10-20/events.jsonl", 3, "expression_evaluation_failed",
         "field properties.duration_ms: 'unknown' is not a number (expression of metric 'gpu_hours': "
         "round(event.properties.duration_ms / 3600000, 2))"),
    ]
    loads = con.execute("""select arrival_date::varchar, events_raw, events_accepted, events_duplicate, events_rejected
                           from marts.fct_event_loads order by 1""").fetchall()
    assert loads == [("2026-10-15", 5, 4, 0, 1), ("2026-10-20", 3, 1, 1, 1), ("2026-11-02", 1, 1, 0, 0)]


def test_running_the_same_command_twice_changes_no_output_byte(billed):
    _, first, second = billed
    assert first == second


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_outputs_validate_against_lagos_openapi_schemas(billed):
    work, _, _ = billed
    assert_lago_schemas(work / "out", folders=(("invoices", "Invoice"), ("current_usage", "CustomerUsage")))
