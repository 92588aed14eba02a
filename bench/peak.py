"""Run one command and report its time and the peak resident memory of its process tree.

    python bench/peak.py LOG CWD COMMAND...   prints "SECONDS PEAK_KIB EXIT_STATUS"

The peak is the largest maximum resident set size of any process of the tree (getrusage's
RUSAGE_CHILDREN), as `bench/run.py` reports it. A process counts there only once its parent has
waited for it, and a process the tree starts without waiting for it (the Spark JVM, which pyspark
starts from the dbt process and leaves to exit on its own) was missing: a 5M run on Spark reported
0.79 GiB while its JVM alone reached 2.62 GiB. On Linux this process is made a child subreaper
(`prctl(PR_SET_CHILD_SUBREAPER)`): such orphans are handed to it when their parent ends, and it
waits for them after the command (at most ORPHANS_WAIT seconds, then kills what is left), so their
peaks count too. The time is the command's own, without that wait. Run in a fresh process for
each measurement, so that RUSAGE_CHILDREN holds this command's tree only.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36  # (linux/prctl.h)
ORPHANS_WAIT = 120.0


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux); whether it is."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def reap_orphans(deadline: float) -> None:
    """Wait for every child left (orphans handed to this process), killing those still running at
    `deadline` (a `time.monotonic()` value)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # none left
        if pid == 0:
            if time.monotonic() > deadline:
                from rss_sampler import children  # (this script's folder, first on sys.path)

                for child in children().get(os.getpid(), []):
                    os.kill(child, signal.SIGKILL)
            time.sleep(0.1)


def main(log: str, cwd: str, argv: list[str]) -> str:
    if not become_subreaper():
        print("peak.py: not a child subreaper here: processes the command does not wait for are not counted",
              file=sys.stderr)
    started = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd).returncode
    seconds = time.perf_counter() - started
    reap_orphans(time.monotonic() + ORPHANS_WAIT)
    return f"{seconds} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {code}"


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
