"""bench/peak.py counts the peak memory of a process its command starts and does not wait for (as
pyspark leaves the Spark JVM), not only of the processes waited for."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a child subreaper is Linux's")

MIB = 2**20
# The command: a child that starts a grandchild holding 300 MiB (written, so resident) and ends at
# once without waiting for it; the grandchild ends on its own after a moment.
GRANDCHILD = "import time; data = b'x' * (300 * 2**20); time.sleep(0.5)"
CHILD = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {GRANDCHILD!r}])"


def _peak(tmp_path, argv):
    out = subprocess.run([sys.executable, str(REPO / "bench" / "peak.py"), str(tmp_path / "log"), str(tmp_path), *argv],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1]) * 1024, int(out[2])


def test_a_process_left_running_by_its_parent_counts_in_the_peak(tmp_path):
    seconds, peak, code = _peak(tmp_path, [sys.executable, "-c", CHILD])
    assert code == 0
    assert peak >= 300 * MIB  # the grandchild's, handed to peak.py when the child ended
    assert seconds >= 0


def test_the_command_s_exit_status_and_output_are_reported(tmp_path):
    _, peak, code = _peak(tmp_path, [sys.executable, "-c", "print('to the log'); raise SystemExit(3)"])
    assert code == 3
    assert (tmp_path / "log").read_text() == "to the log\n"
    assert peak < 300 * MIB
