"""`meterhouse`: bill a landing folder through a date, check inputs, or generate example traffic."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from dagster_project import console as out

# Exit statuses: a run that failed, or a check that found rejections; inputs refused before anything
# is written (click's own usage errors are 2 as well).
RUN_FAILED = REJECTED = 1
BAD_INPUT = 2
BUSY = 3  # another process holds the warehouse's lock (`warehouse_lock.py`): nothing written


@click.group()
@click.version_option(package_name="meterhouse", prog_name="meterhouse", message="%(prog)s %(version)s")
def main() -> None:
    """Meterhouse: a billing warehouse for AI tokens, on Dagster, dbt-duckdb and polars."""


def log_file_of(warehouse: Path) -> Path:
    """Where `meterhouse run` appends the Dagster and dbt logs of each run: beside the warehouse,
    like its `.dbt/` and `.pdf-cache/` folders."""
    return warehouse.with_name(warehouse.name + ".log")


def _refuse(console: out.Console, problems: list[str]) -> None:
    for problem in problems:
        console.error(f"error: {problem}")
    sys.exit(BAD_INPUT)


@dataclass
class Billed:
    summary: dict
    finalized: list  # pipeline.Invoice finalized by this run
    drafts: list


def _bill(console: out.Console, catalog_dir: Path, events_dir: Path, warehouse: Path, out_dir: Path,
          through: dt.date, payments_dir: Path | None, log_file: Path, verbose: bool, log_kept: bool,
          catalog: object = None, engine: str = "duckdb", spark_master: str = "local[*]") -> Billed:
    """Run the pipeline with one line per step on the console and the logs in `log_file`; what it
    finalized (the invoices of `billing.finalized_invoices` that were not there before).
    `catalog`: the catalog `check_inputs` parsed, which the run writes without parsing it again."""
    from dagster_project import pipeline
    from dagster_project.ingest.events import arrival_dates

    before = pipeline.finalized_invoice_ids(warehouse)
    lines = out.StepLines(console, out.StepContext(
        out_dir=str(out_dir) if log_kept else "the temporary folder", payments=payments_dir is not None,
        arrival_days=sum(1 for day in arrival_dates(Path(events_dir)) if day <= through),
        event_outcomes=lambda: pipeline.event_outcomes(warehouse, through)))
    header = (f"==== meterhouse {' '.join(sys.argv[1:])} (pid {os.getpid()}, "
              f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}) ====")
    try:
        with console.capture_logs(log_file, header, echo=verbose), console.showing_progress():
            summary = pipeline.run_pipeline(catalog_dir, events_dir, warehouse, out_dir, through, payments_dir,
                                            observer=lines, catalog=catalog, engine=engine, spark_master=spark_master)
    except pipeline.RunFailed as exc:
        if exc.refusals:  # the input is refused (a credit note): nothing billed, say what to fix
            _refuse(console, [line.removeprefix("- ") for text in exc.refusals for line in text.splitlines()])
        console.error(f"error: {exc}")
        if log_kept:
            console.error(f"the full log: {log_file}")
        else:  # the log goes with the temporary folder: its end, here
            tail = log_file.read_text(errors="replace").splitlines()[-40:]
            console.error("the end of the log:\n" + "\n".join(tail))
        sys.exit(RUN_FAILED)
    invoices = pipeline.invoices(warehouse, finalized_before=before)  # (the finalized ones: since `before`)
    return Billed(summary, [i for i in invoices if i.status == "finalized"],
                  [i for i in invoices if i.status == "draft"])


def spark_missing() -> str | None:
    """Why `--engine spark` cannot run here (None: it can): dbt-spark and pyspark are the optional
    extra `spark`, and a Spark started here needs a Java runtime (a client of Spark Connect does not)."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("dbt.adapters.spark") is None:
        return ("--engine spark: pyspark and dbt-spark are not installed; install the extra "
                "(`uv sync --extra spark`, or `pip install 'meterhouse[spark]'`)")
    if os.environ.get("SPARK_REMOTE", "").startswith("sc://"):  # (a Connect server elsewhere: no Java here)
        return None
    if shutil.which("java", path=os.environ.get("JAVA_HOME", "") + "/bin" + os.pathsep + os.environ.get("PATH", "")) is None:
        return "--engine spark: no Java runtime found (Spark 4 needs Java 17 or later; set JAVA_HOME or PATH)"
    return None


def _warn(console: out.Console, summary: dict, warehouse: Path) -> None:
    """What a user must act on, at the end: rejected events and payment rows, the summary's warnings."""
    from dagster_project import pipeline

    if rejected := pipeline.rejected_events(warehouse, examples=1):
        console.warning(f"{out.plural(sum(r.count for r in rejected), 'event')} rejected, not billed "
                        f"(each with its file, line and reason in marts.fct_events_rejected):")
        for line in out.rejection_lines(rejected):
            console.error(line)
    if rejected := pipeline.rejected_payments(warehouse, examples=1):
        console.warning(f"{out.plural(sum(r.count for r in rejected), 'payment row')} rejected "
                        f"(raw.payments_rejected):")
        for line in out.rejection_lines(rejected):
            console.error(line)
    for text in summary.get("warnings", []):
        console.warning(str(text))


@main.command()
@click.option("--catalog", "catalog_dir", required=True, type=click.Path(path_type=Path), help="Folder of Lago JSON bodies.")
@click.option("--events", "events_dir", required=True, type=click.Path(path_type=Path), help="Landing folder of YYYY-MM-DD/ subfolders.")
@click.option("--warehouse", required=True, type=click.Path(path_type=Path), help="DuckDB file (created if missing).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder for invoices, usage, wallets.")
@click.option("--through", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Bill through this arrival date.")
@click.option("--payments", "payments_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of payments CSV files (invoice_number, amount, currency, paid_at, provider, provider_payment_id).")
@click.option("--dry-run", is_flag=True,
              help="Bill a copy of the warehouse in a temporary folder and show what the run would load, bill and "
                   "finalize; write nothing.")
@click.option("--allow-no-events", is_flag=True,
              help="Bill even when no arrival day would be loaded (no YYYY-MM-DD/ folder up to --through).")
@click.option("--verbose", "-v", is_flag=True, help="Print Dagster's and dbt's logs on the console too.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the run summary as JSON on stdout (the step lines go to stderr).")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the usage models run: the DuckDB warehouse, or Apache Spark through dbt-spark "
                   "(the optional extra `spark`, and Java 17+).")
@click.option("--spark-master", default="local[*]", show_default=True,
              help="Spark's master URL for --engine spark.")
def run(**options) -> None:
    """Load every arrival day up to THROUGH, then bill every invoice due by then.

    One line per step on the console; Dagster's and dbt's logs are appended to WAREHOUSE.log."""
    # Start-up only allocates (the imports, the catalog, Dagster's definitions), and Python's cyclic
    # collections would walk all of it again and again: 0.6-0.8 s of each run. Collection is back
    # on once the definitions are built and frozen (pipeline._run: the steps run with it), and as
    # the caller had it when the command ends.
    was_on = gc.isenabled()
    gc.disable()
    try:
        _run(**options)
    finally:
        if was_on:
            gc.enable()


def _run(catalog_dir: Path, events_dir: Path, warehouse: Path, out_dir: Path, through: dt.datetime,
         payments_dir: Path | None, dry_run: bool, allow_no_events: bool, verbose: bool, as_json: bool,
         engine: str, spark_master: str) -> None:
    started = time.monotonic()
    console = out.Console.on_terminal(lines_on_stderr=as_json)
    through_date = through.date()
    from dagster_project.pipeline import (
        InputProblems,
        accepted_catalog_digest,
        check_inputs,
        quiet_since_problem,
        scratch_copy,
    )

    if engine == "spark" and (problem := spark_missing()):
        _refuse(console, [problem])
    try:  # before anything is written (a catalog the warehouse was written from, unchanged: not parsed again)
        inputs = check_inputs(catalog_dir, events_dir, payments_dir, through_date, allow_no_events,
                              accepted_catalog_digest(warehouse))
    except InputProblems as exc:
        _refuse(console, exc.problems)
    if quiet := quiet_since_problem([d for d in inputs.arrival_days if d <= through_date], through_date):
        console.warning(quiet)
    if dry_run:
        with scratch_copy(warehouse) as copy:
            console.line(f"dry run: billing a copy of {warehouse} in {copy.parent} (deleted afterwards)")
            billed = _bill(console, catalog_dir, events_dir, copy, copy.parent / "out", through_date, payments_dir,
                           copy.parent / "run.log", verbose, log_kept=False, catalog=inputs.catalog,
                           engine=engine, spark_master=spark_master)
            for line in [*out.finalized_report(billed.finalized, dry_run=True), *out.drafts_report(billed.drafts)]:
                console.line(line)
            _warn(console, billed.summary, copy)
        console.line(f"dry run done in {time.monotonic() - started:.1f} s: nothing written")
    else:
        from dagster_project.warehouse_lock import WarehouseBusy, holding

        log_file = log_file_of(warehouse)
        try:
            with holding(warehouse, "meterhouse " + " ".join(sys.argv[1:])):
                billed = _bill(console, catalog_dir, events_dir, warehouse, out_dir, through_date, payments_dir,
                               log_file, verbose, log_kept=True, catalog=inputs.catalog, engine=engine,
                               spark_master=spark_master)
        except WarehouseBusy as exc:
            console.error(f"error: {exc}")
            sys.exit(BUSY)
        for line in out.finalized_report(billed.finalized, dry_run=False):
            console.line(line)
        _warn(console, billed.summary, warehouse)
        console.line(f"billed through {through_date} in {time.monotonic() - started:.1f} s; the full log: {log_file}")
    if as_json:
        click.echo(json.dumps(billed.summary, indent=2))
    # The process ends here: Python's last collection of every object left (Dagster's, dbt's
    # manifest) took about 1 s of each run. Frozen objects are skipped; the OS takes the memory back.
    gc.freeze()


CATALOG_LISTS = ("billable_metrics", "plans", "customers", "subscriptions", "wallets", "taxes")


@main.command()
@click.option("--catalog", "catalog_dir", required=True, type=click.Path(path_type=Path), help="Folder of Lago JSON bodies.")
@click.option("--events", "events_dir", type=click.Path(path_type=Path), default=None,
              help="Landing folder of YYYY-MM-DD/ subfolders: every event is put through the pipeline's checks.")
@click.option("--payments", "payments_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of payments CSV files: every row is checked.")
@click.option("--allow-no-events", is_flag=True, help="Accept a landing folder without any YYYY-MM-DD/ folder.")
@click.option("--verbose", "-v", is_flag=True, help="Print Dagster's and dbt's logs on the console too.")
def check(catalog_dir: Path, events_dir: Path | None, payments_dir: Path | None, allow_no_events: bool,
          verbose: bool) -> None:
    """Check a catalog, and every event and payment row, without writing anything.

    Events and payments go through the pipeline itself, on a fresh warehouse in a temporary
    folder, deleted afterwards. Exit status 0: all clean; 1: events or payment rows would be
    rejected (listed by reason, with examples); 2: a bad catalog or a missing folder."""
    console = out.Console.on_terminal()
    from dagster_project.pipeline import (InputProblems, check_inputs, rejected_events, rejected_payments,
                                          scratch_copy)

    try:
        inputs = check_inputs(catalog_dir, events_dir, payments_dir, None, allow_no_events)
    except InputProblems as exc:
        _refuse(console, exc.problems)
    if events_dir is None and payments_dir is None:
        counts = {name: len(getattr(inputs.catalog, name)) for name in CATALOG_LISTS}
        console.line(out.step_line("catalog", out.describe_catalog(counts)))
        console.line("check: the catalog is valid")
        return
    # Every arrival day; without one (payments only), any date does: rejections do not depend on it.
    through = max(inputs.arrival_days, default=dt.date.today())
    with scratch_copy(None) as copy:
        events = events_dir or copy.parent / "no-events"
        events.mkdir(exist_ok=True)
        _bill(console, catalog_dir, events, copy, copy.parent / "out", through, payments_dir, copy.parent / "run.log",
              verbose, log_kept=False, catalog=inputs.catalog)
        events_rejected, payments_rejected = rejected_events(copy), rejected_payments(copy)
    for rejected, what, where in ((events_rejected, "event", "marts.fct_events_rejected"),
                                  (payments_rejected, "payment row", "raw.payments_rejected")):
        if rejected:
            console.line(f"{out.plural(sum(r.count for r in rejected), what)} would be rejected ({where} after a run): "
                         f"{out.by_reason(rejected)}")
            for line in out.rejection_lines(rejected):
                console.line(line)
    if events_rejected or payments_rejected:
        sys.exit(REJECTED)
    console.line("check: nothing would be rejected")


@main.command()
@click.option("--catalog", "catalog_dir", required=True, type=click.Path(path_type=Path),
              help="Catalog folder: created bodies are written into it.")
@click.option("--events", "events_dir", required=True, type=click.Path(path_type=Path),
              help="Landing folder: events are appended to YYYY-MM-DD/ (their UTC arrival date).")
@click.option("--warehouse", required=True, type=click.Path(path_type=Path), help="DuckDB file the refresh bills.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder the refresh publishes to; reads are answered from it.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--refresh-seconds", default=60.0, show_default=True, type=float,
              help="Bill new events at most this often (an incremental `meterhouse run` through today, UTC).")
def serve(catalog_dir: Path, events_dir: Path, warehouse: Path, out_dir: Path, host: str, port: int,
          refresh_seconds: float) -> None:
    """Lago's HTTP API over the folders: events in, catalog bodies in, current usage, invoices and
    wallets out. The key clients send is METERHOUSE_API_KEY (Authorization: Bearer <key>)."""
    from dagster_project.serve.main import serve as run_server

    run_server(catalog_dir, events_dir, warehouse, out_dir, host, port, refresh_seconds)


@main.command("deliver-webhooks")
@click.option("--warehouse", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The DuckDB file `meterhouse run` filled the webhook outbox of.")
@click.option("--now", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]), default=None,
              help="The time of the attempts, UTC (default: the clock): what is due, and when a retry is due next.")
@click.option("--attempts", default=3, show_default=True, type=click.IntRange(min=1),
              help="Attempts before a webhook is failed (Lago's LAGO_WEBHOOK_ATTEMPTS).")
@click.option("--timeout", default=30.0, show_default=True, type=float, help="Seconds to wait for each answer.")
def deliver_webhooks(warehouse: Path, now: dt.datetime | None, attempts: int, timeout: float) -> None:
    """Post the outbox's due webhooks, signed with METERHOUSE_WEBHOOK_HMAC_KEY (hmac, as Lago signs
    them), and record each attempt; a failed one is retried at a later call after Lago's wait."""
    from dagster_project.defs.resources import MeterhouseSettings
    from dagster_project.warehouse_lock import WarehouseBusy, holding
    from dagster_project.webhook_delivery import HMAC_KEY_VARIABLE, deliver

    console = out.Console.on_terminal()
    key = os.environ.get(HMAC_KEY_VARIABLE, "")
    if not key:
        _refuse(console, [f"{HMAC_KEY_VARIABLE} is not set: the key receivers check X-Lago-Signature with (Lago's "
                          f"organization HMAC key)"])
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    try:
        with holding(warehouse, "meterhouse " + " ".join(sys.argv[1:])):
            # (the settings' connection: UTC, the memory cap; the folders are not read)
            settings = MeterhouseSettings(catalog_dir="", events_dir="", warehouse_path=str(warehouse), out_dir="")
            with settings.connect() as con:
                found = deliver(con, key, now, attempts, timeout)
    except WarehouseBusy as exc:
        console.error(f"error: {exc}")
        sys.exit(BUSY)
    statuses = ", ".join(f"{v} {k.split('_', 1)[1]}" for k, v in found.items() if k.startswith("attempt_"))
    outbox = ", ".join(f"{v} {k.split('_', 1)[1]}" for k, v in found.items() if k.startswith("outbox_"))
    console.line(f"webhooks at {now.isoformat()}Z: {found['attempted']} posted" + (f" ({statuses})" if statuses else "")
                 + (f"; the outbox: {outbox}" if outbox else "; no webhook outbox in this warehouse"))


@main.command("generate-events")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--subscriptions", default=3, show_default=True)
@click.option("--days", default=30, show_default=True)
@click.option("--start", default="2026-10-01", show_default=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--events-per-day", default=1000, show_default=True)
@click.option("--metric-code", default="mistral_tokens", show_default=True)
@click.option("--seed", default=7, show_default=True)
def generate_events_command(out_dir, subscriptions, days, start, events_per_day, metric_code, seed) -> None:
    """Write realistic token traffic (with a few duplicates and malformed lines) to a landing folder."""
    from dagster_project.generator import generate_events

    stats = generate_events(
        out_dir, subscriptions=subscriptions, days=days, start=start.date(), events_per_day=events_per_day,
        metric_code=metric_code, seed=seed,
    )
    click.echo(
        f"wrote {stats.events} events ({stats.duplicates} duplicates, {stats.malformed} malformed) "
        f"in {stats.files} files, {stats.first_day} to {stats.last_day}, under {out_dir}"
    )


@main.command()
@click.option("--plan", "plan_file", required=True, type=click.Path(exists=True, path_type=Path),
              help='Candidate plan: a JSON file holding a Lago {"plan": {...}} body.')
@click.option("--period", required=True, help="Billing month to re-price (YYYY-MM): the periods starting in it.")
@click.option("--warehouse", required=True, type=click.Path(exists=True, path_type=Path), help="DuckDB file (opened read-only).")
@click.option("--catalog", "catalog_dir", required=True, type=click.Path(exists=True, path_type=Path),
              help="The catalog folder the warehouse was billed with (metrics and filters for the candidate plan).")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None,
              help="CSV file to write (default: simulation_<plan code>_<period>.csv).")
def simulate(plan_file: Path, period: str, warehouse: Path, catalog_dir: Path, out_file: Path | None) -> None:
    """Re-price a past month's usage under a candidate plan: per customer, old amount, new amount, difference."""
    from dagster_project.analytics.simulation import SimulationError, load_plan, simulate as run_simulation, to_csv
    from dagster_project.catalog import CatalogError

    try:
        plan = load_plan(plan_file)
        rows = run_simulation(warehouse, catalog_dir, plan, period)
    except (SimulationError, CatalogError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    out_file = out_file or Path(f"simulation_{plan['plan']['code']}_{period}.csv")
    out_file.write_text(to_csv(rows), encoding="utf-8")
    click.echo(to_csv(rows), nl=False)
    click.echo(f"wrote {len(rows)} customers to {out_file}", err=True)


if __name__ == "__main__":
    main()
