"""Benchmark: `meterhouse run` against one hand-written DuckDB query over the same files.

    .venv/bin/python bench/run.py --events 1000000 --subscriptions 50 --days 30

1. Generates D + 1 arrival days of N / D events each for S subscriptions with
   `meterhouse generate-events` (under --work, /tmp by default; reused when already there), and a
   catalog for those subscriptions (the Mistral metric and plans of seeds/mistral, one customer and
   subscription per `sub_NNNNN`).
2. Times `meterhouse run` through day D on a fresh warehouse (the "full month"), then through day
   D + 1 on the same warehouse (one new day after a month of history: the incremental run).
3. Times, in a separate process with the same DuckDB settings (threads, memory limit), the bare
   query: read the D days of JSONL with `read_json`, deduplicate on (external_subscription_id,
   transaction_id), sum tokens per subscription, model, type and month.
4. Prints events/s, the ratio pipeline / bare query, the peak memory of each (maximum resident set
   of the process tree's largest process, the Spark JVM included: `bench/peak.py`), the
   incremental run's share of the full run, and each run's steps as the console timed them.
5. With --rerun, times the same run again with no new data; with --lago, times Lago's own Postgres
   billing path (`../shared/peers/lago-postgres/lago_path.py`) on the same D days of files, in the
   same bench run, and prints Meterhouse's full run against it.

Not part of the test suite. Run it with `nice -n 10` on a shared machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This checkout's code (run from REPO, so a copy of the repository benchmarks itself).
METERHOUSE = [sys.executable, "-m", "dagster_project.cli"]
START = dt.date(2026, 10, 1)
THREADS = 2
MEMORY_LIMIT = "4GB"
LAGO_PATH = REPO.parent / "shared" / "peers" / "lago-postgres" / "lago_path.py"
LAGO_METRIC_CODE = "ai_tokens"  # the code lago_path.py bills
# The console's step lines ("usage models  20 dbt models; ...   7.1 s"), timed by the run itself.
STEPS = ("catalog", "events", "usage models", "pricing", "billing marts", "publish")

BARE_QUERY = """
with events as (
    select
        coalesce(event.external_subscription_id, external_subscription_id) as external_subscription_id,
        coalesce(event.transaction_id, transaction_id) as transaction_id,
        coalesce(event.timestamp, timestamp) as ts,
        coalesce(event.properties, properties) as p
    from read_json({files}, format = 'newline_delimited', ignore_errors = true, columns = {{
        event: 'STRUCT(transaction_id VARCHAR, external_subscription_id VARCHAR, "timestamp" BIGINT,
                       properties STRUCT(tokens BIGINT, model VARCHAR, "type" VARCHAR))',
        transaction_id: 'VARCHAR', external_subscription_id: 'VARCHAR', "timestamp": 'BIGINT',
        properties: 'STRUCT(tokens BIGINT, model VARCHAR, "type" VARCHAR)'
    }})
),
deduplicated as (
    select external_subscription_id, transaction_id,
        any_value(ts) as ts, any_value(p.model) as model, any_value(p.type) as token_type,
        any_value(p.tokens) as tokens
    from events
    where transaction_id is not null and external_subscription_id is not null
    group by external_subscription_id, transaction_id
)
select external_subscription_id, model, token_type, date_trunc('month', to_timestamp(ts)) as month,
    sum(tokens) as tokens, count(*) as events
from deduplicated
group by all
"""


def measured(argv: list[str], log: Path) -> tuple[float, int]:
    """Run `argv` from REPO, its output into `log`: (seconds, peak bytes), the peak being the largest
    process of its tree, the processes it does not wait for (the Spark JVM) included (`peak.py`)."""
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("peak.py")), str(log), str(REPO), *argv],
                         capture_output=True, text=True, check=True).stdout.split()
    seconds, maxrss_kib, code = float(out[0]), int(out[1]), int(out[2])
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(argv)}\n" + log.read_text()[-3000:])
    return seconds, maxrss_kib * 1024


def write_catalog(folder: Path, subscriptions: int, metric_code: str = "mistral_tokens", wallets: float = 0.0) -> None:
    """The Mistral metric and plans of the bundled example (the metric's code `metric_code`), and one
    UTC customer and subscription (plan `mistral_pricing`, from the day before the first arrival)
    per generated subscription. The first `wallets` share of the customers (0.5: every other one,
    from the first) hold a wallet of 20.00 USD of granted credits."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    seeds = REPO / "seeds" / "mistral" / "catalog"
    for name in ("01_billable_metrics.json", "02_plans.json"):
        (folder / name).write_text((seeds / name).read_text().replace('"mistral_tokens"', json.dumps(metric_code)))
    ids = [f"{i:05d}" for i in range(1, subscriptions + 1)]
    customers = [{"customer": {"external_id": f"cus_{i}", "name": f"Customer {i}", "currency": "USD",
                               "timezone": "UTC"}} for i in ids]
    subs = [{"subscription": {"external_customer_id": f"cus_{i}", "plan_code": "mistral_pricing",
                              "external_id": f"sub_{i}", "subscription_at": f"{START - dt.timedelta(days=1)}T00:00:00Z"}}
            for i in ids]
    (folder / "03_customers.json").write_text(json.dumps(customers, indent=1))
    (folder / "05_subscriptions.json").write_text(json.dumps(subs, indent=1))
    holders = [i for n, i in enumerate(ids) if wallets and n % round(1 / wallets) == 0]
    if holders:
        bodies = [{"wallet": {"name": "Free credits", "external_customer_id": f"cus_{i}", "currency": "USD",
                              "rate_amount": "1.0", "granted_credits": "20.0", "paid_credits": "0"}} for i in holders]
        (folder / "04_wallets.json").write_text(json.dumps(bodies, indent=1))


def generate(events_dir: Path, subscriptions: int, days: int, per_day: int, for_lago: bool = False) -> float:
    """D + 1 days of traffic, reused when the same arguments already wrote them. For Lago's path
    (`for_lago`): its metric code `ai_tokens`, no malformed line (its loader stops at the first) and
    every event wrapped (`{"event": ...}`, the only form it reads)."""
    marker = events_dir / ".complete"
    if marker.exists():
        return 0.0
    if events_dir.exists():
        shutil.rmtree(events_dir)
    started = time.perf_counter()
    if for_lago:
        sys.path.insert(0, str(REPO))
        from dagster_project.generator import generate_events

        generate_events(events_dir, subscriptions=subscriptions, days=days + 1, start=START, events_per_day=per_day,
                        metric_code=LAGO_METRIC_CODE, malformed_share=0, bare_share=0)
    else:
        subprocess.run(
            [*METERHOUSE, "generate-events", "--out", str(events_dir), "--subscriptions", str(subscriptions),
             "--days", str(days + 1), "--start", START.isoformat(), "--events-per-day", str(per_day)],
            check=True, stdout=subprocess.DEVNULL, cwd=REPO,
        )
    marker.write_text("")
    return time.perf_counter() - started


def bare_query(files: list[Path], work: Path, log: Path) -> tuple[float, int, int, int]:
    """(seconds, peak bytes, tokens, deduplicated events) of the hand-written query."""
    result = work / "bare.json"
    script = (
        "import duckdb, json, sys\n"
        f"con = duckdb.connect()\n"
        f"con.execute(\"set threads = {THREADS}\")\n"
        f"con.execute(\"set memory_limit = '{MEMORY_LIMIT}'\")\n"
        f"con.execute(\"set temp_directory = '{work / 'bare.tmp'}'\")\n"
        f"rows = con.execute({BARE_QUERY.format(files=[str(f) for f in files])!r}).fetchall()\n"
        f"json.dump([sum(r[4] or 0 for r in rows), sum(r[5] for r in rows), len(rows)], open({str(result)!r}, 'w'))\n"
    )
    seconds, peak = measured([sys.executable, "-c", script], log)
    tokens, events, _groups = json.loads(result.read_text())
    return seconds, peak, tokens, events


def meterhouse_run(catalog: Path, events_dir: Path, warehouse: Path, out: Path, through: dt.date, log: Path,
                   engine: str = "duckdb"):
    return measured(
        [*METERHOUSE, "run", "--catalog", str(catalog), "--events", str(events_dir),
         "--warehouse", str(warehouse), "--out", str(out), "--through", through.isoformat(), "--engine", engine],
        log,
    )


def step_times(log: Path) -> dict[str, float]:
    """Each step's seconds, from the step lines `meterhouse run` printed into `log`."""
    times = {}
    for line in log.read_text(errors="replace").splitlines():
        for step in STEPS:
            if line.startswith(step + " ") and line.rstrip().endswith(" s"):
                times[step] = float(line.rstrip()[:-2].rsplit(" ", 1)[1])
    return times


def steps_text(times: dict[str, float]) -> str:
    return ", ".join(f"{step} {seconds:.1f} s" for step, seconds in times.items())


def lago_path(events_dir: Path, days: int, work: Path, log: Path) -> tuple[float, str]:
    """(seconds, its last lines) of Lago's Postgres path over the first `days` arrival days: a
    landing folder of links to those day folders, so that both read the same files."""
    landing = work / "lago-landing"
    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir()
    for d in range(days):
        name = (START + dt.timedelta(days=d)).isoformat()
        (landing / name).symlink_to(events_dir / name, target_is_directory=True)
    measured([sys.executable, str(LAGO_PATH), str(landing)], log)
    # Lago's own time, as the script reports it: load and index, then the billing queries (without
    # starting and removing its Postgres cluster, nor writing the CSV it loads)
    text = log.read_text(errors="replace").strip()
    return float(re.search(r"lago_total=([0-9.]+)s", text)[1]), text.splitlines()[-1]


def pipeline_totals(warehouse: Path, through: dt.date) -> tuple[int, int]:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    tokens = con.execute(
        "select coalesce(sum(units), 0) from marts.fct_usage_by_model_and_type"
    ).fetchone()[0]
    accepted = con.execute(
        "select coalesce(sum(events_accepted), 0) from marts.fct_event_loads where arrival_date <= ?", [through]
    ).fetchone()[0]
    con.close()
    return int(tokens), int(accepted)


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events over the D days of the full run")
    parser.add_argument("--subscriptions", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--wallets", type=float, default=0.0,
                        help="the share of customers holding a wallet of granted credits (0.5: every other one)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "meterhouse-bench")
    parser.add_argument("--skip-bare", action="store_true", help="do not time the bare query")
    parser.add_argument("--skip-incremental", action="store_true", help="do not time the one-day run")
    parser.add_argument("--keep-warehouse", action="store_true", help="keep the warehouse and outputs afterwards")
    parser.add_argument("--rerun", action="store_true", help="time one more run with no new data")
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                        help="where `meterhouse run` builds the usage models (spark: on local[*])")
    parser.add_argument("--lago", action="store_true",
                        help=f"time Lago's Postgres path on the same files ({LAGO_PATH}; needs Postgres binaries); "
                             "the events are then generated with its metric code and no malformed line")
    args = parser.parse_args()

    per_day = max(args.events // args.days, 1)
    events = per_day * args.days
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    events_dir = work / (f"events-{events}-{args.subscriptions}-{args.days}" + ("-lago" if args.lago else ""))
    catalog = work / (f"catalog-{args.subscriptions}" + (f"-wallets-{args.wallets}" if args.wallets else ""))
    run_dir = work / "run"
    last_day = START + dt.timedelta(days=args.days - 1)
    next_day = last_day + dt.timedelta(days=1)

    generated = generate(events_dir, args.subscriptions, args.days, per_day, for_lago=args.lago)
    print(f"events: {events:,} over {args.days} days ({per_day:,} a day), {args.subscriptions} subscriptions"
          + (f" ({args.wallets:.0%} of the customers with a wallet)" if args.wallets else "") + f" in {events_dir}" + (f" (generated in {generated:.0f} s)" if generated else " (reused)"), flush=True)
    write_catalog(catalog, args.subscriptions, LAGO_METRIC_CODE if args.lago else "mistral_tokens", args.wallets)
    files = sorted(p for d in range(args.days) for p in (events_dir / (START + dt.timedelta(days=d)).isoformat()).glob("*.jsonl"))
    size = sum(p.stat().st_size for p in files)
    print(f"files: {len(files)}, {gib(size)}", flush=True)

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir()
    warehouse, out = run_dir / "warehouse.duckdb", run_dir / "out"
    env_note = f"threads {THREADS}, memory limit {MEMORY_LIMIT}"

    full_s, full_peak = meterhouse_run(catalog, events_dir, warehouse, out, last_day, run_dir / "full.log", args.engine)
    tokens, accepted = pipeline_totals(warehouse, last_day)
    print(f"pipeline, full run ({args.days} days): {full_s:.1f} s, {events / full_s:,.0f} events/s, "
          f"peak RSS {gib(full_peak)}, warehouse {gib(warehouse.stat().st_size)}", flush=True)
    print(f"  accepted {accepted:,} events, {tokens:,} tokens", flush=True)
    print(f"  steps: {steps_text(step_times(run_dir / 'full.log'))}", flush=True)

    report = {"events": events, "subscriptions": args.subscriptions, "wallets": args.wallets, "days": args.days, "bytes": size,
              "pipeline_seconds": full_s, "pipeline_peak_bytes": full_peak,
              "pipeline_events_per_second": events / full_s}
    if not args.skip_bare:
        bare_s, bare_peak, bare_tokens, bare_events = bare_query(files, run_dir, run_dir / "bare.log")
        print(f"bare DuckDB query ({env_note}): {bare_s:.1f} s, {events / bare_s:,.0f} events/s, "
              f"peak RSS {gib(bare_peak)}", flush=True)
        print(f"  {bare_events:,} deduplicated events, {bare_tokens:,} tokens (no catalog validation: counts"
              f" unknown subscriptions, skips unreadable lines)", flush=True)
        print(f"ratio pipeline / bare: {full_s / bare_s:.2f} (target <= 1.5)", flush=True)
        report.update(bare_seconds=bare_s, bare_peak_bytes=bare_peak, ratio=full_s / bare_s)
    if not args.skip_incremental:
        day_s, day_peak = meterhouse_run(catalog, events_dir, warehouse, out, next_day, run_dir / "day.log", args.engine)
        print(f"one new day ({next_day}, {per_day:,} events) after {args.days} days: {day_s:.1f} s, "
              f"peak RSS {gib(day_peak)}, {day_s / full_s:.3f} of the full run (target <= 0.1)", flush=True)
        print(f"  steps: {steps_text(step_times(run_dir / 'day.log'))}", flush=True)
        report.update(day_seconds=day_s, day_peak_bytes=day_peak, day_share=day_s / full_s)
    if args.rerun:
        through = last_day if args.skip_incremental else next_day
        again_s, _ = meterhouse_run(catalog, events_dir, warehouse, out, through, run_dir / "again.log", args.engine)
        print(f"the same run again, no new data: {again_s:.1f} s", flush=True)
        print(f"  steps: {steps_text(step_times(run_dir / 'again.log'))}", flush=True)
        report.update(no_new_data_seconds=again_s)
    if args.lago:
        lago_s, lago_tail = lago_path(events_dir, args.days, run_dir, run_dir / "lago.log")
        print(f"Lago's Postgres path on the same {args.days} days (load and index, then queries): {lago_s:.1f} s"
              f" ({lago_tail})", flush=True)
        print(f"ratio Lago / pipeline (full run): {lago_s / full_s:.2f} (target >= 10)", flush=True)
        report.update(lago_seconds=lago_s, lago_ratio=lago_s / full_s)
    (work / "last_report.json").write_text(json.dumps(report, indent=2))
    print(f"report: {work / 'last_report.json'}; logs in {run_dir}")
    if not args.keep_warehouse:
        shutil.rmtree(run_dir / "out", ignore_errors=True)
        warehouse.unlink(missing_ok=True)
        for beside in (".dbt", ".pdf-cache", ".tmp", ".wal"):  # dbt's target, PDF cache, spill, log
            path = warehouse.with_name(warehouse.name + beside)
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
