"""Billing brought up to date in the background: when events arrived or the catalog changed since the
last run, an incremental `meterhouse run` (a subprocess: the same command a scheduler runs, with its
checks and its warehouse lock) bills through today (UTC), at most once every `interval` seconds.
Reads keep being answered from the last published outputs while it runs; a run that fails leaves
them as they were, and is tried again at the next interval."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagster_project.ingest.events import arrival_dates
from dagster_project.serve.published import Published

BUSY = 3  # `meterhouse run`'s exit status when another process holds the warehouse (cli.BUSY)


def _die_with_the_server() -> None:
    """In the run's process, before it starts: killed when the server's refresh thread ends (the
    server stopped or was killed), so that no run outlives its server and holds the warehouse's
    lock. A run killed midway is safe: the next run repairs it (tests/e2e/test_kill_and_rerun.py)."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class Paths:
    catalog: Path
    events: Path
    warehouse: Path
    out: Path


def run_command(paths: Paths, through: dt.date) -> list[str]:
    """The `meterhouse run` a refresh runs: the serve's folders, billed through `through`."""
    return [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(paths.catalog),
            "--events", str(paths.events), "--warehouse", str(paths.warehouse), "--out", str(paths.out),
            "--through", through.isoformat()]


def next_start(dirty: bool, last_started: float | None, interval: float, now: float) -> float | None:
    """When the next run may start (monotonic seconds), or None when there is nothing new to bill:
    at once if no run started yet, else `interval` after the last start."""
    if not dirty:
        return None
    return now if last_started is None else max(now, last_started + interval)


@dataclass
class Status:
    runs: int = 0
    last_billed_through: str | None = None
    last_finished_at: str | None = None
    last_seconds: float | None = None
    last_error: str | None = None


class Refresher(threading.Thread):
    """`changes()` counts what was written (events appended, catalog writes); `billing_date()` is
    the date a run bills through (`EventLog.billing_date`: today, after the writes under way);
    `published(p)` receives each run's outputs."""

    def __init__(self, paths: Paths, interval: float, changes: Callable[[], tuple], billing_date: Callable[[], dt.date],
                 published: Callable[[Published], None], clock: Callable[[], dt.datetime],
                 say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)):
        super().__init__(name="meterhouse-refresh", daemon=True)
        self.paths, self.interval = paths, interval
        self._changes, self._billing_date, self._published, self._clock, self._say = (
            changes, billing_date, published, clock, say)
        self._billed: tuple | None = None  # `changes()` as of the last run that succeeded
        self._last_started: float | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.status = Status()

    def poke(self) -> None:
        """Something was written: look again now rather than at the next tick."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _dirty(self) -> bool:
        # Nothing to bill before the landing folder has an arrival day (`meterhouse run` would
        # refuse it, rightly: invoices finalized without usage).
        return self._changes() != self._billed and bool(arrival_dates(self.paths.events))

    def run(self) -> None:
        while not self._stop.is_set():
            start = next_start(self._dirty(), self._last_started, self.interval, time.monotonic())
            if start is None or start > time.monotonic():
                self._wake.wait(self.interval if start is None else start - time.monotonic())
                self._wake.clear()
                continue
            self.refresh()

    def refresh(self) -> bool:
        """One run now; whether it published."""
        self._last_started = time.monotonic()
        through = self._billing_date()
        seen = self._changes()  # what this run bills at least (later writes make it dirty again)
        result = subprocess.run(run_command(self.paths, through), capture_output=True, text=True,
                                preexec_fn=_die_with_the_server if sys.platform == "linux" else None)
        seconds = time.monotonic() - self._last_started
        self.status.runs += 1
        self.status.last_seconds = round(seconds, 1)
        if result.returncode != 0:
            what = "the warehouse is busy" if result.returncode == BUSY else f"exit status {result.returncode}"
            self.status.last_error = f"{what}: {(result.stderr or result.stdout).strip()[-2000:]}"
            self._say(f"refresh: meterhouse run failed ({what}); the last published outputs are served; "
                      f"tried again in {self.interval:g} s\n{self.status.last_error}")
            return False
        self._published(Published.read(self.paths.out))
        self._billed = seen
        self.status.last_error = None
        self.status.last_billed_through = through.isoformat()
        self.status.last_finished_at = self._clock().astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._say(f"refresh: billed through {through} in {seconds:.1f} s")
        return True
