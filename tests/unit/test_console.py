"""What `meterhouse run` prints for a person (dagster_project/console.py): the pure formatting, the
grouping of Dagster's steps into lines, the progress line, and the log capture."""

import datetime as dt
import io
import subprocess
import sys

from dagster_project import console
from dagster_project.console import Console, StepContext, StepLines
from dagster_project.pipeline import Invoice, Rejections
from tests.conftest import REPO


def test_amounts_are_shown_exactly_with_the_currencys_decimals():
    assert console.money(1420, "EUR") == "14.20 EUR"
    assert console.money(123456789, "USD") == "1,234,567.89 USD"
    assert console.money(150000, "JPY") == "150,000 JPY"  # no minor unit
    assert console.money(1234, "KWD") == "1.234 KWD"  # three decimals
    assert console.money(5, "USD") == "0.05 USD"


def test_counts_read_as_words():
    assert console.plural(1, "plan") == "1 plan"
    assert console.plural(12345, "event") == "12,345 events"
    assert console.plural(2, "tax", "taxes") == "2 taxes"


def test_a_step_line_puts_the_name_the_counts_and_the_seconds_in_columns():
    line = console.step_line("catalog", "1 metric", 0.44)
    assert line == "catalog" + " " * 7 + "1 metric" + " " * 56 + "    0.4 s"
    assert line.index("1 metric") == console.NAME_WIDTH
    assert console.step_line("invoices", "finalized no invoice") == "invoices      finalized no invoice"


def test_the_events_line_counts_folders_files_and_events_and_the_days_not_read_again():
    meta = {"days": 24, "days_unchanged": 23, "files_loaded": 1, "events_raw": 8, "events_malformed": 1}
    assert console.describe_events(2, meta) == (
        "2 arrival days, 1 file and 8 events read (1 unreadable); 23 days unchanged, not read again")
    assert console.describe_events(1, {"days": 1, "files_loaded": 3, "events_raw": 12345}) == (
        "1 arrival day, 3 files and 12,345 events read")


def _lines(context=None, steps=()) -> list[str]:
    out = io.StringIO()
    lines = StepLines(Console(out, io.StringIO()), context or StepContext(out_dir="/out", payments=False))
    for step in steps:
        if step is None:
            lines.flush()
        else:
            lines.step_done(*step)
    lines.flush()
    return out.getvalue().splitlines()


def test_steps_are_grouped_into_one_line_each_with_their_seconds_added_up():
    printed = _lines(
        StepContext(out_dir="/out", payments=False,
                    event_outcomes=lambda: {"accepted": 8, "duplicate": 1, "rejected": 2, "late": 0}),
        [
            ("catalog", 0.25, {"catalog/billable_metrics": {"rows": 1}, "catalog/plans": {"rows": 2},
                               "catalog/customers": {"rows": 3}, "catalog/subscriptions": {"rows": 3},
                               "catalog/wallets": {"rows": 0}}),
            ("raw__payments", 0.05, {"raw/payments": {"payments": 0, "rejected": 0}}),  # no --payments: no line
            None,  # the end of a Dagster run
            ("calendar__billing_periods", 0.5, {"calendar/billing_periods": {"periods": 4}}),
            ("usage_models", 4.0, {"staging/stg_a": {}, "intermediate/int_b": {}, "marts/fct_c": {}}),
            ("marts__fct_event_loads_every_event_is_accounted_for", 0.1, {}),  # an asset check: the line before
            ("priced_billing", 0.3, {"billing/invoices": {"rows": 4}, "billing/fees": {"rows": 12},
                                     "billing/wallet_transactions": {"rows": 2}}),
        ])
    assert [line.split("  ")[0] for line in printed] == ["catalog", "usage models", "pricing"]
    assert printed[0].startswith("catalog       1 metric, 2 plans, 3 customers, 3 subscriptions ")
    assert printed[1].startswith("usage models  3 dbt models; events 8 accepted, 1 duplicate, 2 rejected ")
    assert printed[1].endswith(" 4.6 s")  # 0.5 + 4.0 + 0.1
    assert printed[2].startswith("pricing       4 invoices, 12 fees, 2 wallet transactions ")


def test_the_payments_line_is_printed_when_a_payments_folder_was_given():
    printed = _lines(StepContext(out_dir="/out", payments=True),
                     [("raw__payments", 0.05, {"raw/payments": {"payments": 5, "rejected": 1}})])
    assert printed == [console.step_line("payments", "5 payments, 1 row rejected", 0.05)]


def _invoice(number, customer, cents, status="finalized", start=None, end=None):
    return Invoice(f"id-{number}", number, status, "subscription", customer, start, end, cents, "EUR")


def test_the_finalized_invoices_are_listed_aligned_with_their_totals():
    finalized = [_invoice("MIS-001-001", "de_business", 1600), _invoice("MIS-003-001", "fr_consumer", 1420),
                 _invoice("MIS-010-001", "x", 123456)]
    assert console.finalized_report(finalized, dry_run=False) == [
        "invoices      finalized 3 invoices in this run (number, customer, total due):",
        "  MIS-001-001  de_business     16.00 EUR",
        "  MIS-003-001  fr_consumer     14.20 EUR",
        "  MIS-010-001  x            1,234.56 EUR",
    ]
    assert console.finalized_report([], dry_run=False) == ["invoices      finalized no invoice in this run"]
    assert console.finalized_report(finalized[:1], dry_run=True)[0] == (
        "invoices      would finalize 1 invoice (number, customer, total due):")


def test_drafts_show_their_period():
    # (the period's end date is the next one's start, as stored; its last day is shown)
    draft = _invoice("MIS-004-DRAFT", "us_customer", 1600, "draft", dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert console.drafts_report([draft]) == [
        "drafts        1 invoice not finalized yet (total so far):",
        "  MIS-004-DRAFT  us_customer  16.00 EUR  2026-10-01 to 2026-10-31",
    ]


def test_rejections_show_each_reason_with_its_count_and_examples():
    rejected = [Rejections("invalid_json", 2, ["2026-11-03/api.jsonl line 2: the line is not valid JSON",
                                               "2026-11-03/api.jsonl line 5"]),
                Rejections("unknown_subscription", 1, ["2026-11-03/api.jsonl line 3"])]
    assert console.rejection_lines(rejected) == [
        "  invalid_json                2  e.g. 2026-11-03/api.jsonl line 2: the line is not valid JSON",
        "                                      2026-11-03/api.jsonl line 5",
        "  unknown_subscription        1  e.g. 2026-11-03/api.jsonl line 3",
    ]
    assert console.by_reason(rejected) == "invalid_json 2, unknown_subscription 1"


def test_without_a_terminal_a_long_load_prints_a_line_at_each_quarter_and_a_short_one_none():
    # 45 days: a quarter is passed when 4 * index // 45 grows: at 12 (48), 23 (92) and 34 (136)
    assert [i for i in range(1, 46) if console.plain_progress_due(i, 45)] == [12, 23, 34]
    assert not any(console.plain_progress_due(i, 27) for i in range(1, 28))  # under a month


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_progress_line_is_rewritten_in_place_and_cleared_before_the_next_line():
    out, err = io.StringIO(), _Terminal()
    shown = Console(out, err)
    with shown.showing_progress():
        console.report_progress("events", 1, 3, "2026-10-01")
        console.report_progress("events", 2, 3, "2026-10-02")
        shown.line("events        done")
    console.report_progress("events", 3, 3, "2026-10-03")  # no console any more: nothing
    assert err.getvalue() == ("\r\x1b[K" + console.step_line("events", "1/3 days loaded (last: 2026-10-01)")
                              + "\r\x1b[K" + console.step_line("events", "2/3 days loaded (last: 2026-10-02)")
                              + "\r\x1b[K")
    assert out.getvalue() == "events        done\n"


CAPTURE = """
import os, subprocess, sys
from pathlib import Path
from dagster_project.console import Console
shown = Console.on_terminal()
with shown.capture_logs(Path(sys.argv[1]), "==== header ====", echo=sys.argv[2] == "echo"):
    print("python stdout", flush=True)
    print("python stderr", file=sys.stderr, flush=True)
    subprocess.run(["sh", "-c", "echo child stdout; echo child stderr >&2"])
    shown.line("a step line")
print("after")
"""


def test_the_logs_go_to_the_log_file_and_the_step_lines_to_the_console(tmp_path):
    log = tmp_path / "w.duckdb.log"
    log.write_text("an earlier run\n")
    result = subprocess.run([sys.executable, "-c", CAPTURE, str(log), "quiet"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("a step line\nafter\n", "")
    assert log.read_text() == ("an earlier run\n==== header ====\n"
                               "python stdout\npython stderr\nchild stdout\nchild stderr\n")


def test_verbose_logs_go_to_the_console_as_well(tmp_path):
    log = tmp_path / "w.duckdb.log"
    result = subprocess.run([sys.executable, "-c", CAPTURE, str(log), "echo"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    logged = "python stdout\npython stderr\nchild stdout\nchild stderr\n"
    assert log.read_text() == "==== header ====\n" + logged
    assert result.stderr == logged and result.stdout == "a step line\nafter\n"


def test_the_catalog_line_counts_coupons_and_applied_coupons_when_there_are_any():
    rows = {"billable_metrics": 2, "plans": 1, "customers": 2, "subscriptions": 2, "taxes": 1, "coupons": 3,
            "applied_coupons": 1}
    assert console.describe_catalog(rows) == ("2 metrics, 1 plan, 2 customers, 2 subscriptions, 1 tax, 3 coupons, "
                                              "1 applied coupon")
    assert "coupon" not in console.describe_catalog({**rows, "coupons": 0, "applied_coupons": 0})
