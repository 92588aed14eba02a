"""`meterhouse run` and `meterhouse check` as a user types them, on tests/scenarios/eu_vat (figures
in tests/e2e/test_eu_vat_and_grace.py's docstring):

- billed through Nov 2, three invoices are finalized: de_business MIS-001-001, 10.50 fee + 4.00 +
  1.50 usage = 16.00 EUR, reverse charge 0%; de_consumer MIS-002-001, 16.00 + 19% VAT 3.04 = 19.04
  EUR; fr_consumer MIS-003-001, 16.00 + 20% VAT 3.20 - 5.00 granted credits = 14.20 EUR.
  us_customer's invoice (3-day grace period) is a draft of 16.00 EUR.
- billed through Nov 5, us_customer's is finalized: MIS-004-001, 18.00 EUR (0.6M more input
  tokens arrived on Nov 3: 3 packages of 2.00 instead of 2), exempt.

The landing folder: 8 events on Oct 10 (input and output for each of the 4 customers, one file),
1 on Nov 3, 1 on Nov 5.

Real runs cost 15-40 s each: the run, dry-run and rerun tests share one work folder, billed in
order by the module fixture `billed`.
"""

import json
import os
import subprocess
import sys
import tomllib
from types import SimpleNamespace

import pytest

from tests.conftest import REPO

SCENARIO = REPO / "tests" / "scenarios" / "eu_vat"
CATALOG = SCENARIO / "catalog"
FIRST_RUN_INVOICES = [
    "  MIS-001-001  de_business  16.00 EUR",
    "  MIS-002-001  de_consumer  19.04 EUR",
    "  MIS-003-001  fr_consumer  14.20 EUR",
]
STEP_NAMES = ["catalog", "events", "usage models", "pricing", "billing marts", "publish"]


def meterhouse(*args, tmpdir=None, umask=-1):
    environment = os.environ | ({"TMPDIR": str(tmpdir)} if tmpdir else {})
    return subprocess.run([sys.executable, "-m", "dagster_project.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=environment, umask=umask)


def run_args(work, through, *extra, events=None):
    return ["run", "--catalog", CATALOG, "--events", events or work / "events", "--warehouse", work / "warehouse.duckdb",
            "--out", work / "out", "--through", through, *extra]


def tree(folder, leave_out=("tmp",)):
    """Every file and folder under `folder` by relative path: the file's bytes (None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.relative_to(folder).parts[0] not in leave_out}


def ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def billed(tmp_path_factory):
    """One work folder, in order: a dry run through Nov 2 on no warehouse, the real run through Nov 2
    (under umask 027), a dry run through Nov 5 on the billed warehouse, the real run through Nov 5,
    and the same again with --json. The folder's tree is kept around each dry run."""
    import shutil

    work = tmp_path_factory.mktemp("cli")
    shutil.copytree(SCENARIO / "events", work / "events")
    (work / "tmp").mkdir()  # TMPDIR of every run: the dry runs' copies go there, and must go away
    b = SimpleNamespace(work=work)
    b.fresh_tree = tree(work)
    b.dry_fresh = ok(meterhouse(*run_args(work, "2026-11-02", "--dry-run"), tmpdir=work / "tmp"))
    b.after_dry_fresh = tree(work)
    b.first = ok(meterhouse(*run_args(work, "2026-11-02"), tmpdir=work / "tmp", umask=0o027))
    b.modes = {str(p.relative_to(work)): p.stat().st_mode & 0o777 for p in (work / "out").rglob("*") if p.is_file()}
    b.billed_tree = tree(work)
    b.billed_log = (work / "warehouse.duckdb.log").read_text()
    b.dry_billed = ok(meterhouse(*run_args(work, "2026-11-05", "--dry-run"), tmpdir=work / "tmp"))
    b.after_dry_billed = tree(work)
    b.second = ok(meterhouse(*run_args(work, "2026-11-05"), tmpdir=work / "tmp"))
    b.second_summary = (work / "out" / "run_summary.json").read_bytes()
    log = work / "warehouse.duckdb.log"  # the run's full log: each run appends its own section
    b.second_log = log.read_text()[len(b.billed_log):]
    b.rerun = ok(meterhouse(*run_args(work, "2026-11-05", "--json"), tmpdir=work / "tmp"))
    b.rerun_log = log.read_text()[len(b.billed_log) + len(b.second_log):]
    return b


def _invoice_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith("  MIS-")]


def test_a_dry_run_on_no_warehouse_writes_nothing_and_lists_what_the_real_run_then_finalizes(billed):
    assert billed.after_dry_fresh == billed.fresh_tree  # no warehouse, no out, no log, nothing beside them
    lines = billed.dry_fresh.stdout.splitlines()
    assert lines[0].startswith(f"dry run: billing a copy of {billed.work / 'warehouse.duckdb'} in ")
    assert "invoices      would finalize 3 invoices (number, customer, total due):" in lines
    assert _invoice_lines(billed.dry_fresh.stdout) == [*FIRST_RUN_INVOICES, "  MIS-004-DRAFT  us_customer  16.00 EUR  2026-10-01 to 2026-10-31"]
    assert lines[-1].startswith("dry run done in ") and lines[-1].endswith(" s: nothing written")
    # the real run finalizes exactly those
    assert "invoices      finalized 3 invoices in this run (number, customer, total due):" in billed.first.stdout
    assert _invoice_lines(billed.first.stdout) == FIRST_RUN_INVOICES


def test_a_dry_run_on_a_billed_warehouse_writes_nothing_and_lists_what_the_next_run_finalizes(billed):
    after, before = billed.after_dry_billed, billed.billed_tree
    assert after == before  # the warehouse, its .dbt/ and .pdf-cache/ folders, its log, out/: same names, same bytes
    assert {"warehouse.duckdb", "warehouse.duckdb.log", "warehouse.duckdb.dbt", "warehouse.duckdb.pdf-cache",
            "out/run_summary.json"} <= set(before)
    assert _invoice_lines(billed.dry_billed.stdout) == ["  MIS-004-001  us_customer  18.00 EUR"]
    assert "drafts        none" in billed.dry_billed.stdout.splitlines()
    assert _invoice_lines(billed.second.stdout) == ["  MIS-004-001  us_customer  18.00 EUR"]


def test_the_dry_runs_leave_nothing_in_the_temporary_folder(billed):
    assert list((billed.work / "tmp").iterdir()) == []


def test_a_rerun_finalizes_nothing_and_says_so_and_json_prints_the_summary(billed):
    # --json: the summary on stdout, the step lines on stderr
    assert json.loads(billed.rerun.stdout) == json.loads(billed.second_summary)
    assert "invoices      finalized no invoice in this run" in billed.rerun.stderr.splitlines()
    assert (billed.work / "out" / "run_summary.json").read_bytes() == billed.second_summary  # not in the summary


def test_a_rerun_with_nothing_new_runs_no_dbt_command_and_says_so(billed):
    # the second run had a new day of events and a new billing date: both dbt commands ran
    assert billed.second_log.count("Running dbt command: ") == 2
    assert " unchanged, not run" not in billed.second.stdout
    # the rerun: the same files, catalog and date, so the same inputs to both: neither runs
    assert billed.rerun_log.count("==== meterhouse run ") == 1
    assert "Running dbt command: " not in billed.rerun_log
    steps = {line[:14].strip(): line for line in billed.rerun.stderr.splitlines()}
    assert steps["usage models"].startswith("usage models  ")
    assert " dbt models unchanged, not run; events 10 accepted, 0 duplicates, 0 rejected, 1 late " in steps["usage models"]
    assert " dbt models unchanged, not run " in steps["billing marts"]


def test_an_unchanged_catalog_is_derived_once_and_then_recognized(billed):
    """The three real runs read the same catalog folder: the first writes the catalog tables, the
    next two find the folder and the code as they were and write nothing, nor parse it before the
    run (the command compares the folder's digest with the warehouse's)."""
    assert "catalog loaded: " in billed.billed_log and "catalog unchanged" not in billed.billed_log
    for log in (billed.second_log, billed.rerun_log):
        assert "catalog unchanged since it was last written, not derived again (not parsed)" in log
        assert "catalog loaded: " not in log


def test_documents_are_rendered_once_a_run_with_no_new_invoice_renders_none(billed):
    """The first run finalizes 3 invoices (6 document files: HTML and PDF), the second one more
    (MIS-004-001: 2 files rendered, the 6 earlier read back from the cache); the rerun (`--json`:
    the steps on stderr), nothing."""
    def publish_line(result):
        return next(line for line in (result.stdout + result.stderr).splitlines() if line.startswith("publish "))

    assert " 6 documents (6 rendered), " in publish_line(billed.first)
    assert " 8 documents (2 rendered), " in publish_line(billed.second)
    assert " 8 documents (0 rendered), " in publish_line(billed.rerun)


def test_the_console_shows_one_line_per_step_with_its_counts_and_no_log(billed):
    lines = billed.first.stdout.splitlines()
    assert [line[:14].strip() for line in lines[:6]] == STEP_NAMES
    assert lines[0].startswith("catalog       1 metric, 1 plan, 4 customers, 4 subscriptions, 1 wallet ")
    events_in_file = len((SCENARIO / "events" / "2026-10-10" / "api.jsonl").read_text().splitlines())
    assert events_in_file == 8
    assert lines[1].startswith("events        1 arrival day, 1 file and 8 events read ")
    assert "; events 8 accepted, 0 duplicates, 0 rejected " in lines[2]
    assert all(line.endswith(" s") for line in lines[:6])
    assert lines[-1].startswith("billed through 2026-11-02 in ")
    assert lines[-1].endswith(f" s; the full log: {billed.work / 'warehouse.duckdb.log'}")
    assert len(lines) == 6 + 1 + 3 + 1  # steps, the finalized invoices (a header and one line each), the end
    # nothing rejected; the one warning: the scenario's next folder (Nov 3) is after the billing date
    assert billed.first.stderr.splitlines() == [
        "warning: no event arrived after 2026-10-10 (the last arrival-day folder with events), but the run bills "
        "through 2026-11-02: the invoices it finalizes hold no usage that arrived in between"]
    assert "DEBUG" not in billed.first.stdout + billed.first.stderr + billed.second.stdout + billed.second.stderr


def test_the_log_file_beside_the_warehouse_holds_dagsters_and_dbts_logs_of_each_real_run(billed):
    log = (billed.work / "warehouse.duckdb.log").read_text()
    headers = [line for line in log.splitlines() if line.startswith("==== meterhouse run ")]
    assert len(headers) == 3  # the three real runs; the dry runs' logs went with their copies
    assert "--through 2026-11-02" in headers[0] and "--json" in headers[2]
    assert " - dagster - DEBUG - " in log and 'STEP_SUCCESS - Finished execution of step "priced_billing"' in log
    assert "Running with dbt=" in log and "OK created sql incremental model intermediate.int_events_checked_daily" in log
    # the money checks of defs/checks.py ran, in each real run
    for check in ("'invoice_arithmetic' on 'billing/invoices'", "'every_event_is_accounted_for' on 'marts/fct_event_loads'"):
        assert log.count(f"Asset check {check} passed") == 3, check


def test_output_files_honour_the_umask(billed):
    # the first run ran under umask 027: 0666 & ~027 = 0640
    assert billed.modes and set(billed.modes.values()) == {0o640}


# ---- inputs refused before anything is written ----------------------------------------------------


def test_missing_input_folders_stop_the_run_naming_each_before_anything_is_written(tmp_path):
    missing = tmp_path / "no" / "such"
    result = meterhouse("run", "--catalog", missing / "catalog", "--events", missing / "events",
                        "--payments", missing / "payments", "--warehouse", tmp_path / "w" / "warehouse.duckdb",
                        "--out", tmp_path / "w" / "out", "--through", "2026-11-02")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: --{name} {missing / name}: no such folder"
                                          for name in ("catalog", "events", "payments")]
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no warehouse, no out, no log, not even their folder


def test_the_run_starts_without_cyclic_collection_and_turns_it_back_on_even_when_it_refuses(tmp_path, monkeypatch):
    # in this process (click's runner): the start-up (here, the inputs' check) sees collection
    # off; a run stopped there still leaves it on, as the rest of a process calling it expects
    import gc

    from click.testing import CliRunner

    from dagster_project import pipeline
    from dagster_project.cli import main

    seen = []

    def refuse(*args):
        seen.append(gc.isenabled())
        raise pipeline.InputProblems(["--catalog: refused by the test"])

    monkeypatch.setattr(pipeline, "check_inputs", refuse)
    assert gc.isenabled()
    result = CliRunner().invoke(main, ["run", "--catalog", str(tmp_path), "--events", str(tmp_path), "--warehouse",
                                       str(tmp_path / "warehouse.duckdb"), "--out", str(tmp_path / "out"),
                                       "--through", "2026-11-02"])
    assert result.exit_code == 2, result.output
    assert seen == [False]
    assert gc.isenabled()
    gc.disable()  # a caller that had it off finds it off
    try:
        assert CliRunner().invoke(main, ["run", "--catalog", str(tmp_path), "--events", str(tmp_path), "--warehouse",
                                         str(tmp_path / "warehouse.duckdb"), "--out", str(tmp_path / "out"),
                                         "--through", "2026-11-02"]).exit_code == 2
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_runs_steps_run_with_cyclic_collection_on_and_young_collections_less_often(tmp_path, monkeypatch):
    # the start-up turned it off; the definitions built, the steps get it back (a run of 100,000
    # customers must not go without it), a young collection once 50,000 new objects are alive
    # instead of Python's 700. Afterwards the caller's thresholds are back. The steps here: one
    # that notes them, then stops the run.
    import gc
    import shutil

    from click.testing import CliRunner

    from dagster_project import pipeline
    from dagster_project.cli import RUN_FAILED, main

    seen = []

    def steps(*args):
        seen.append((gc.isenabled(), gc.get_threshold()))
        raise pipeline.RunFailed("the test's steps", [("noted", "stopped by the test")])

    monkeypatch.setattr(pipeline, "_materialize_all", steps)
    shutil.copytree(SCENARIO / "events", tmp_path / "events")
    before = gc.get_threshold()
    gc.set_threshold(900, 11, 12)  # the caller's own
    try:
        result = CliRunner().invoke(main, ["run", "--catalog", str(CATALOG), "--events", str(tmp_path / "events"),
                                           "--warehouse", str(tmp_path / "warehouse.duckdb"), "--out",
                                           str(tmp_path / "out"), "--through", "2026-11-02"])
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*before)
    assert result.exit_code == RUN_FAILED, result.output
    assert seen == [(True, (50_000, 20, 20))]
    assert after == (900, 11, 12)
    assert gc.isenabled()


def test_a_pipeline_run_leaves_collection_off_for_a_caller_that_had_it_off(tmp_path, monkeypatch):
    # on for the steps all the same; off again once they end (`meterhouse run` reads the
    # finalized invoices after the steps with it off, then turns it back on as it ends)
    import datetime as dt
    import gc
    import shutil

    from dagster_project import pipeline

    seen = []

    def steps(*args):
        seen.append(gc.isenabled())

    monkeypatch.setattr(pipeline, "_materialize_all", steps)
    shutil.copytree(SCENARIO / "events", tmp_path / "events")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "run_summary.json").write_text("{}")  # (what the steps would have written)
    gc.disable()
    try:
        pipeline.run_pipeline(CATALOG, tmp_path / "events", tmp_path / "warehouse.duckdb", tmp_path / "out",
                              dt.date(2026, 11, 2))
        after = gc.isenabled()
    finally:
        gc.enable()
    assert (seen, after) == ([True], False)


def test_a_file_given_as_the_payments_folder_stops_the_run(tmp_path):
    (tmp_path / "payments.csv").write_text("invoice_number,amount,currency,paid_at,provider,provider_payment_id\n")
    result = meterhouse(*run_args(tmp_path, "2026-11-02", "--payments", tmp_path / "payments.csv",
                                  events=SCENARIO / "events"))
    assert result.returncode == 2
    assert result.stderr == f"error: --payments {tmp_path / 'payments.csv'}: not a folder\n"
    assert [p.name for p in tmp_path.iterdir()] == ["payments.csv"]


def test_a_landing_folder_without_any_arrival_day_stops_the_run(tmp_path):
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "notes.txt").write_text("not a day folder")
    result = meterhouse(*run_args(tmp_path, "2026-11-02"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --events {tmp_path / 'events'}: no arrival-day folder (YYYY-MM-DD/) with an event file in it")
    assert "--allow-no-events" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"]


def test_a_billing_date_before_every_arrival_day_stops_the_run(tmp_path):
    result = meterhouse(*run_args(tmp_path, "2025-11-02", events=SCENARIO / "events"))
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: --through 2025-11-02 is before the first arrival day in {SCENARIO / 'events'} (2026-10-10)")
    assert list(tmp_path.iterdir()) == []


def test_allow_no_events_bills_the_subscription_fees_alone(tmp_path):
    # What the refusal above protects from, asked for: no usage, so each invoice holds the 10.50
    # subscription fee only. de_business: reverse charge, 10.50. de_consumer: 19% of 10.50 = 1.995,
    # rounded half-up once per invoice: 2.00, 12.50. fr_consumer: 20% = 2.10, 12.60, less its 5.00
    # granted credits: 7.60.
    (tmp_path / "events").mkdir()
    result = ok(meterhouse(*run_args(tmp_path, "2026-11-02", "--allow-no-events")))
    assert _invoice_lines(result.stdout) == [
        "  MIS-001-001  de_business  10.50 EUR",
        "  MIS-002-001  de_consumer  12.50 EUR",
        "  MIS-003-001  fr_consumer   7.60 EUR",
    ]
    steps = [line[:14].strip() for line in result.stdout.splitlines()[:5]]
    assert steps == ["catalog", "usage models", "pricing", "billing marts", "publish"]  # no day to load: no events step


# ---- check --------------------------------------------------------------------------------------------


def test_check_on_clean_events_exits_0_and_writes_nothing(tmp_path):
    result = meterhouse("check", "--catalog", CATALOG, "--events", SCENARIO / "events", tmpdir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("events        3 arrival days, 3 files and 10 events read ")
    assert "; events 10 accepted, 0 duplicates, 0 rejected, 1 late " in lines[2]  # (late: a fact of billing, not of the event)
    assert lines[-1] == "check: nothing would be rejected"
    assert list(tmp_path.iterdir()) == []  # its temporary warehouse is gone


def test_check_on_bad_events_exits_1_naming_file_line_and_reason(tmp_path):
    import shutil

    events = tmp_path / "events"
    shutil.copytree(SCENARIO / "events", events)
    with (events / "2026-11-03" / "api.jsonl").open("a") as landing:  # after its one line
        landing.write("not json\n")
        landing.write('{"transaction_id": "x1", "code": "tokens", "external_subscription_id": "nobody",'
                      ' "timestamp": "2026-11-02T10:00:00Z", "properties": {"tokens": 5}}\n')
    before = tree(tmp_path)
    result = meterhouse("check", "--catalog", CATALOG, "--events", events, tmpdir=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("2 events would be rejected (marts.fct_events_rejected after a run): "
                        "invalid_json 1, unknown_subscription 1")
    assert lines[start + 1:] == [
        "  invalid_json                1  e.g. 2026-11-03/api.jsonl line 2: the line is not valid JSON",
        "  unknown_subscription        1  e.g. 2026-11-03/api.jsonl line 3: field external_subscription_id: "
        "no subscription nobody",
    ]
    assert tree(tmp_path) == before


def test_check_of_a_catalog_alone_runs_nothing(tmp_path):
    result = meterhouse("check", "--catalog", CATALOG, tmpdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["catalog       1 metric, 1 plan, 4 customers, 4 subscriptions, 1 wallet",
                                          "check: the catalog is valid"]


def test_check_of_a_bad_catalog_or_a_missing_folder_exits_2(tmp_path):
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "plans.json").write_text('{"plan": {"name": "P", "code": "p"}}')
    result = meterhouse("check", "--catalog", tmp_path / "catalog", "--events", tmp_path / "missing")
    assert result.returncode == 2
    assert f"error: --events {tmp_path / 'missing'}: no such folder" in result.stderr.splitlines()
    assert "plans.json, body 1 (plan 'p'), field interval" in result.stderr


def test_the_version_is_the_packages():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = meterhouse("--version")
    assert (result.returncode, result.stdout) == (0, f"meterhouse {version}\n")
