"""A run killed in the middle, then rerun, gives the same outputs as a run never interrupted."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tests.conftest import REPO, run_meterhouse, snapshot

SCENARIO = REPO / "tests" / "scenarios" / "new_york_month_end"
MID_DBT = "START sql incremental model intermediate.int_events_checked_daily"


def test_a_run_killed_mid_way_then_rerun_equals_an_uninterrupted_run(tmp_path, new_york_billed):
    killed = tmp_path / "killed"
    shutil.copytree(SCENARIO / "events", killed / "events")
    # The warm dbt's socket folder, which a SIGKILL to the group leaves behind, in a temporary folder
    # of its own, removed afterwards. Not under tmp_path: a Unix socket's path has at most 107 bytes,
    # and under pytest-xdist's tmp_path the socket's path was longer, so the run failed at once
    # (and the test, which then only asked for a non-zero exit status, passed without killing anything).
    socket_tmp = tempfile.mkdtemp(prefix="mh-kill-")
    try:
        _kill_mid_way(killed, socket_tmp)
    finally:
        shutil.rmtree(socket_tmp, ignore_errors=True)

    run_meterhouse(SCENARIO / "catalog", killed / "events", killed, "2026-11-05")
    _, uninterrupted, _ = new_york_billed  # the same command on a fresh warehouse, never interrupted
    assert snapshot(killed / "out") == uninterrupted
    assert not list((killed / "out").rglob("*.partial"))


def _kill_mid_way(killed, socket_tmp):
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(SCENARIO / "catalog"),
         "--events", str(killed / "events"), "--warehouse", str(killed / "warehouse.duckdb"),
         "--out", str(killed / "out"), "--through", "2026-11-05"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env=os.environ | {"TMPDIR": socket_tmp},
    )
    # Killed at a point of the run, not after a time: when dbt starts the model that matches events
    # to charges, well into the dbt build (its lines go to the log file beside the warehouse). The
    # deadline only keeps a broken run from hanging the suite.
    log, deadline = killed / "warehouse.duckdb.log", time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline and MID_DBT not in (
            log.read_text(errors="replace") if log.exists() else ""):
        time.sleep(0.05)
    assert process.poll() is None, f"the run ended before it reached the dbt build: {process.stderr.read()[-3000:]}"
    assert MID_DBT in log.read_text(errors="replace"), "the run did not reach the dbt build in 10 minutes"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert not (killed / "out" / "run_summary.json").exists()  # killed before it published anything
