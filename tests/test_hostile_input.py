"""The hostile corpus under tests/hostile: every bad event is quarantined with its reason while the
rest loads and the run succeeds; every bad catalog stops the run before anything is written."""

import json
import shutil
import subprocess
import sys

import duckdb
import pytest

from tests.conftest import REPO, run_meterhouse

HOSTILE = REPO / "tests" / "hostile"
CATALOG = REPO / "tests" / "scenarios" / "new_york_month_end" / "catalog"
THROUGH = "2026-10-12"


def test_every_hostile_event_gets_its_expected_reason_and_the_rest_is_billed(tmp_path):
    shutil.copytree(HOSTILE / "events", tmp_path / "events")
    run_meterhouse(CATALOG, tmp_path / "events", tmp_path, THROUGH)
    assert_each_line_got_its_expected_reason(tmp_path)


def assert_each_line_got_its_expected_reason(work):
    """The run billed into `work` (on either engine: tests/e2e/test_spark_engine.py checks Spark's
    reading with it) quarantined each line of tests/hostile/expected_reasons.json for its reason,
    counted the duplicates, and billed the rest."""
    out = work / "out"
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    reasons = dict(con.execute(
        """select source_file || ':' || line_number, rejection_reason from marts.fct_events_rejected
           union all
           select source_file || ':' || line_number, 'duplicate' from marts.fct_duplicate_events"""
    ).fetchall())
    # every line neither rejected nor a duplicate is billed: the accepted events, counted per day
    accepted = con.execute("select sum(events_accepted) from marts.fct_event_loads").fetchone()[0]
    expected = json.loads((HOSTILE / "expected_reasons.json").read_text())
    assert {k: reasons.get(k) for k in expected} == expected
    assert accepted == sum(1 for v in expected.values() if v is None)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["events_raw"] == summary["events_accepted"] + summary["events_duplicate"] + summary["events_rejected"]
    assert con.execute("select count(*) from raw.events").fetchone()[0] == summary["events_raw"]  # no table dropped


@pytest.mark.parametrize("name", sorted(p.name for p in (HOSTILE / "catalogs").iterdir()))
def test_a_hostile_catalog_fails_before_anything_is_written(tmp_path, name):
    folder = HOSTILE / "catalogs" / name
    result = subprocess.run(
        [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(folder), "--events", str(tmp_path),
         "--warehouse", str(tmp_path / "w.duckdb"), "--out", str(tmp_path / "out"), "--through", "2026-11-01"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 2
    assert (folder / "expected.txt").read_text().strip() in result.stderr
    assert not (tmp_path / "w.duckdb").exists() and not (tmp_path / "out").exists()
