"""Accepted events, appended durably to the landing folder the run reads.

Each server process appends to a file of its own in the folder of the UTC arrival date,
`<landing>/YYYY-MM-DD/serve-<start time>-<pid>.jsonl`, opened with O_APPEND. A request's lines go
in one `os.write` (looped on a short write), then the file is fsynced before the answer: an
acknowledged event is on disk. Writers that arrive while one fsync runs are covered by the next
(group commit), so a busy server does not pay one fsync per request.

A SIGKILL can cut a write short (the kernel stops a write between pages when the process gets a
fatal signal), leaving the last line of a file half written. That line was never acknowledged; the
loader would quarantine it as `invalid_json`, never bill it. A server that starts cuts such a tail
from the files earlier servers left (`repair`), saying so, before it writes anything.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from pathlib import Path

FILE_PREFIX = "serve-"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cut_partial_line(path: Path) -> int:
    """Cut a last line without its newline from `path` (fsynced); the number of bytes cut."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        keep, block = 0, 65536
        position = size
        while position > 0:  # the last newline, read backwards in blocks
            start = max(position - block, 0)
            f.seek(start)
            chunk = f.read(position - start)
            index = chunk.rfind(b"\n")
            if index >= 0:
                keep = start + index + 1
                break
            position = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def repair(landing: Path) -> list[str]:
    """Cut the half-written last line of every server file in the landing folder; what was cut, in
    words (one line per file)."""
    said = []
    for path in sorted(Path(landing).glob(f"*/{FILE_PREFIX}*.jsonl")):
        if cut := cut_partial_line(path):
            said.append(f"{path}: cut {cut} bytes of a last line written only in part (never acknowledged)")
    return said


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class EventLog:
    """The landing folder, appended to by this server: `append` returns once the lines are on disk."""

    def __init__(self, landing: Path, clock: Callable[[], dt.datetime] = utc_now):
        self.landing = Path(landing)
        self.landing.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        started = clock()
        self.file_name = f"{FILE_PREFIX}{started:%Y%m%dT%H%M%S}-{os.getpid()}.jsonl"
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._fds: dict[dt.date, int] = {}  # kept open for the server's life (one per arrival day)
        self._written: dict[int, int] = {}  # fd -> writes done
        self._synced: dict[int, int] = {}  # fd -> writes on disk
        self.events_appended = 0  # counted for the refresh: new events since the last run

    def _fd_for(self, day: dt.date) -> int:
        if day not in self._fds:
            folder = self.landing / day.isoformat()
            new_folder = not folder.exists()
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / self.file_name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            _fsync_folder(folder)  # the file's name is durable too
            if new_folder:
                _fsync_folder(self.landing)
            self._fds[day], self._written[fd], self._synced[fd] = fd, 0, 0
        return self._fds[day]

    def arrival_day(self) -> dt.date:
        return self._clock().astimezone(dt.timezone.utc).date()

    def append(self, data: bytes, events: int) -> dt.date:
        """Append whole lines (`events` of them) to the file of today's arrival folder, fsynced;
        the arrival date. The date is taken under the write lock, so a line lands in the folder of
        the day it was written on."""
        with self._write_lock:
            day = self.arrival_day()
            fd = self._fd_for(day)
            _write_all(fd, data)
            self._written[fd] += 1
            mine = self._written[fd]
            self.events_appended += events
        with self._sync_lock:
            if self._synced[fd] < mine:
                target = self._written[fd]  # every write counted here is complete
                os.fsync(fd)
                self._synced[fd] = max(self._synced[fd], target)
        return day

    def billing_date(self) -> dt.date:
        """Today's arrival date, taken once the writes under way are done and before any other
        starts: every line written before is in its file, every line written after lands in this
        day's folder or a later one, which a run through this date does not close (the refresh's
        billing date)."""
        with self._write_lock:
            return self.arrival_day()

    def close(self) -> None:
        with self._write_lock:
            for fd in self._fds.values():
                os.fsync(fd)
                os.close(fd)
            self._fds.clear()
