"""`meterhouse serve` as a user starts it, in a subprocess on a free local port, for the e2e tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
API_KEY = "test-key-0f1e2d"


@dataclass
class Served:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> str:
        """SIGTERM, wait (bounded); the server's log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def start(work: Path, refresh_seconds: float, name: str = "server") -> Served:
    """Start on port 0 (the system picks a free one) and read the port from the server's first line;
    bounded: 120 s."""
    log = work / f"{name}.log"
    handle = open(log, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_project.cli", "serve", "--catalog", str(work / "catalog"),
         "--events", str(work / "events"), "--warehouse", str(work / "warehouse.duckdb"), "--out", str(work / "out"),
         "--port", "0", "--refresh-seconds", str(refresh_seconds)],
        cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "METERHOUSE_API_KEY": API_KEY})
    handle.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if match := re.search(r"listening on http://127\.0\.0\.1:(\d+)/", log.read_text(errors="replace")):
            return Served(process, int(match[1]), log)
        if process.poll() is not None:
            raise AssertionError(f"the server stopped: {log.read_text(errors='replace')}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the server did not start within 120 s: {log.read_text(errors='replace')}")


def poll(read, done, seconds: float, what: str):
    """`read()` again until `done(value)`, for at most `seconds`; the value. (A deadline, not a
    sleep that asserts: the refresh takes as long as the machine makes it.)"""
    deadline = time.monotonic() + seconds
    value = None
    while time.monotonic() < deadline:
        try:
            value = read()
        except Exception as exc:  # not published yet
            value = exc
        if not isinstance(value, Exception) and done(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not reached within {seconds} s; last read: {value!r}")
