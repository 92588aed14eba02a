"""Benchmark: `meterhouse serve` on the batch endpoint, and how fresh current usage is.

    .venv/bin/python bench/serve.py --clients 4 --batches 200 --rate 1000 --seconds 60

1. Starts `meterhouse serve` on a free port of 127.0.0.1 (a fresh work folder under --work), with a
   one-metric catalog (`tests/e2e/test_serve_kill.py`'s).
2. Throughput: --clients threads, each on one keep-alive connection, send --batches batches of
   100 events each to `POST /api/v1/events/batch` as fast as answers come; prints events
   acknowledged per second (acknowledged = written and fsynced) and the p50/p99 latency of a batch.
3. Freshness: sends --rate events/s (batches of 100, paced) for --seconds, and polls current usage
   every 0.25 s; the freshness of a batch is the time from its acknowledgement to the first read of
   current usage that counts it. Prints p50/p95. The refresh interval is --refresh-seconds.

Every loop is bounded in count and time; traffic goes to 127.0.0.1 only. Not part of the test
suite; run it with `nice -n 10` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.e2e.serve_process import API_KEY, start  # noqa: E402
from tests.e2e.test_serve_kill import CATALOG  # noqa: E402

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def batch(prefix: str, number: int) -> list[dict]:
    return [{"transaction_id": f"{prefix}{number:06d}-{i:02d}", "code": "tokens", "external_subscription_id": "sub_acme",
             "properties": {"tokens": 1000, "model": "small"}} for i in range(100)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def throughput(url: str, clients: int, batches: int) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        bodies = [json.dumps({"events": batch(f"c{n}-", b)}).encode() for b in range(batches)]
        with httpx.Client(base_url=url, headers={**HEADERS, "Content-Type": "application/json"}, timeout=60) as http:
            for body in bodies:
                started = time.perf_counter()
                assert http.post("api/v1/events/batch", content=body).status_code == 200
                with lock:
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    seconds = time.perf_counter() - started
    return {"events": 100 * len(latencies), "seconds": round(seconds, 2),
            "events_per_second": round(100 * len(latencies) / seconds),
            "p50_ms": round(1000 * percentile(latencies, 0.50), 2), "p99_ms": round(1000 * percentile(latencies, 0.99), 2)}


def freshness(url: str, rate: int, seconds: int, already: int) -> dict:
    """`already`: the events current usage will count besides these (the throughput phase's)."""
    acked: list[tuple[int, float]] = []  # (events counted once this batch is in, acknowledged at)
    seen: list[tuple[int, float]] = []  # (events in current usage, read at)
    done = threading.Event()

    def reader() -> None:
        with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as http:
            deadline = time.monotonic() + seconds + 600
            while time.monotonic() < deadline:
                answer = http.get("api/v1/customers/acme/current_usage", params={"external_subscription_id": "sub_acme"})
                if answer.status_code == 200:
                    count = sum(c["events_count"] for c in answer.json()["customer_usage"]["charges_usage"])
                    seen.append((count, time.monotonic()))
                    if done.is_set() and acked and count >= acked[-1][0]:
                        return
                time.sleep(0.25)

    watcher = threading.Thread(target=reader)
    watcher.start()
    per_batch = 100 / rate
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as http:
        start = time.monotonic()
        for n in range(int(rate * seconds / 100)):
            time.sleep(max(0.0, start + n * per_batch - time.monotonic()))
            assert http.post("api/v1/events/batch", json={"events": batch("f", n)}).status_code == 200
            acked.append((already + 100 * (n + 1), time.monotonic()))
    done.set()
    watcher.join(seconds + 660)
    delays = []
    for count, at in acked:
        visible = next((read_at for seen_count, read_at in seen if seen_count >= count and read_at >= at), None)
        if visible is not None:
            delays.append(visible - at)
    return {"rate": rate, "seconds": seconds, "batches": len(acked), "visible": len(delays),
            "p50_s": round(percentile(delays, 0.50), 1) if delays else None,
            "p95_s": round(percentile(delays, 0.95), 1) if delays else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=200, help="per client")
    parser.add_argument("--rate", type=int, default=1000, help="events/s in the freshness phase")
    parser.add_argument("--seconds", type=int, default=60, help="length of the freshness phase")
    parser.add_argument("--refresh-seconds", type=float, default=5)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="meterhouse-bench-serve-"))
    (work / "catalog").mkdir(parents=True)
    for kind, body in CATALOG.items():
        (work / "catalog" / f"{kind}.json").write_text(json.dumps({kind: body}))
    server = start(work, refresh_seconds=args.refresh_seconds)
    try:
        fast = throughput(server.url, args.clients, args.batches)
        print("throughput", json.dumps(fast), flush=True)
        fresh = freshness(server.url, args.rate, args.seconds, already=fast["events"])
        print("freshness ", json.dumps(fresh), flush=True)
    finally:
        log = server.stop()
    print("\n".join(line for line in log.splitlines() if line.startswith("refresh:"))[-2000:])


if __name__ == "__main__":
    main()
