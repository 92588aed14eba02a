"""A run killed in the middle, then rerun, gives the same outputs as a run never interrupted."""

import os
import shutil
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, run_meterhouse, snapshot

SCENARIO = REPO / "tests" / "scenarios" / "new_york_month_end"


def test_a_run_killed_mid_way_then_rerun_equals_an_uninterrupted_run(tmp_path, new_york_billed):
    killed = tmp_path / "killed"
    shutil.copytree(SCENARIO / "events", killed / "events")
    (killed / "tmp").mkdir()  # the warm dbt's socket folder, which a SIGKILL to the group leaves behind
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(SCENARIO / "catalog"),
         "--events", str(killed / "events"), "--warehouse", str(killed / "warehouse.duckdb"),
         "--out", str(killed / "out"), "--through", "2026-11-05"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=os.environ | {"TMPDIR": str(killed / "tmp")},
    )
    deadline = time.monotonic() + 120
    while not (killed / "warehouse.duckdb").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(8)  # well into loading and the dbt build
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode != 0, "the run finished before it could be killed: kill it sooner"

    run_meterhouse(SCENARIO / "catalog", killed / "events", killed, "2026-11-05")
    _, uninterrupted, _ = new_york_billed  # the same command on a fresh warehouse, never interrupted
    assert snapshot(killed / "out") == uninterrupted
    assert not list((killed / "out").rglob("*.partial"))
