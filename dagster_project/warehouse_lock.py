"""One writer per warehouse: `meterhouse run` and the refresh of `meterhouse serve` bill a warehouse
only while holding an exclusive `flock` on `<warehouse>.lock`, beside it. The second one is refused
at once with a message naming the holder (its pid and command, written into the lock file), and
nothing is written. The lock goes with its process: a killed run leaves no stale lock behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class WarehouseBusy(Exception):
    """Another process is billing this warehouse."""


def lock_file_of(warehouse: Path) -> Path:
    return Path(warehouse).with_name(Path(warehouse).name + ".lock")


@contextlib.contextmanager
def holding(warehouse: Path, holder: str) -> Iterator[Path]:
    """Hold the warehouse's lock while the block runs; `WarehouseBusy` when another process holds
    it. `holder` (e.g. the command line) is written into the lock file for that message."""
    path = lock_file_of(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            raise WarehouseBusy(f"{warehouse} is being billed by {other} (lock {path}): one writer at a time; "
                                f"run again when it has finished") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {holder}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
