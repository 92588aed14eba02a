"""Sample the resident memory of a process tree, to find which process and which step peaks.

    .venv/bin/python bench/rss_sampler.py --match "dagster_project.cli run" --log RUN/full.log --out rss.tsv

Every `--every` seconds it finds the processes whose command line contains `--match` (the first one
found is the root; its descendants are followed too), reads VmRSS and VmHWM from /proc/<pid>/status,
and writes one line per process per sample: seconds since the root was found, pid, VmRSS and VmHWM
in MiB, the command (shortened), and the last line of `--log` (the step the console was in). It stops
when the root has ended, and prints each process's highest VmHWM and the log line at its highest
VmRSS. Not part of the test suite; a measuring aid for docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(root: int) -> list[int]:
    tree, found, todo = children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def memory_mib(pid: int) -> tuple[float, float] | None:
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def command(pid: int, width: int | None = 120) -> str:
    """The process's command line, its first `width` characters (None: all of it)."""
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    return (text if width is None else text[:width]).strip()


def find_root(match: str) -> int | None:
    for entry in sorted(os.listdir("/proc"), key=lambda e: int(e) if e.isdigit() else 0):
        if entry.isdigit() and int(entry) != os.getpid() and match in command(int(entry), None):
            return int(entry)
    return None


def last_line(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    with log.open("rb") as f:
        f.seek(max(f.seek(0, 2) - 400, 0))
        lines = [line for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip()[:100] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--match", required=True)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--every", type=float, default=0.5)
    args = parser.parse_args()
    root = None
    while root is None:
        root = find_root(args.match)
        time.sleep(0.2)
    started = time.monotonic()
    peaks: dict[int, tuple[float, str, str]] = {}
    highest: dict[int, float] = {}
    with args.out.open("w") as out:
        while Path(f"/proc/{root}").exists():
            step = last_line(args.log)
            now = time.monotonic() - started
            for pid in descendants(root):
                mem = memory_mib(pid)
                if mem is None:
                    continue
                rss, hwm = mem
                cmd = command(pid)
                out.write(f"{now:.1f}\t{pid}\t{rss:.0f}\t{hwm:.0f}\t{cmd}\t{step}\n")
                if rss > highest.get(pid, -1):
                    highest[pid] = rss
                    peaks[pid] = (hwm, cmd, f"{now:.1f} s: {step}")
                else:
                    peaks[pid] = (max(hwm, peaks[pid][0]), peaks[pid][1], peaks[pid][2])
            out.flush()
            time.sleep(args.every)
    for pid, (hwm, cmd, when) in sorted(peaks.items(), key=lambda kv: -kv[1][0]):
        if hwm > 100:
            print(f"{pid}\tVmHWM {hwm:.0f} MiB\thighest VmRSS {highest[pid]:.0f} MiB at {when}\t{cmd}")


if __name__ == "__main__":
    main()
