"""A run killed in the middle, then rerun, gives the same outputs as a run never interrupted."""

import os
import shutil
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, run_meterhouse

SCENARIO = REPO / "tests" / "scenarios" / "new_york_month_end"


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_killed_mid_way_then_rerun_equals_an_uninterrupted_run(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for work in (killed, clean):
        shutil.copytree(SCENARIO / "events", work / "events")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(SCENARIO / "catalog"),
         "--events", str(killed / "events"), "--warehouse", str(killed / "warehouse.duckdb"),
         "--out", str(killed / "out"), "--through", "2026-11-05"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (killed / "warehouse.duckdb").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(8)  # well into loading and the dbt build
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode != 0, "the run finished before it could be killed: kill it sooner"

    run_meterhouse(SCENARIO / "catalog", killed / "events", killed, "2026-11-05")
    run_meterhouse(SCENARIO / "catalog", clean / "events", clean, "2026-11-05")
    assert snapshot(killed / "out") == snapshot(clean / "out")
    assert not list((killed / "out").rglob("*.partial"))
