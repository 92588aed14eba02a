"""`meterhouse`: bill a landing folder through a date, or generate example traffic."""

from __future__ import annotations

import datetime as dt
import gc
import json
import sys
from pathlib import Path

import click


@click.group()
def main() -> None:
    """Meterhouse: a billing warehouse for AI tokens, on Dagster, dbt-duckdb and polars."""


@main.command()
@click.option("--catalog", "catalog_dir", required=True, type=click.Path(path_type=Path), help="Folder of Lago JSON bodies.")
@click.option("--events", "events_dir", required=True, type=click.Path(path_type=Path), help="Landing folder of YYYY-MM-DD/ subfolders.")
@click.option("--warehouse", required=True, type=click.Path(path_type=Path), help="DuckDB file (created if missing).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder for invoices, usage, wallets.")
@click.option("--through", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Bill through this arrival date.")
@click.option("--payments", "payments_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of payments CSV files (invoice_number, amount, currency, paid_at, provider, provider_payment_id).")
def run(catalog_dir: Path, events_dir: Path, warehouse: Path, out_dir: Path, through: dt.datetime,
        payments_dir: Path | None) -> None:
    """Load every arrival day up to THROUGH, then bill every invoice due by then."""
    from dagster_project.catalog import CatalogError, read_catalog

    try:
        read_catalog(catalog_dir)  # a bad catalog fails here, before anything is written
    except CatalogError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    from dagster_project.pipeline import run_pipeline

    try:
        summary = run_pipeline(catalog_dir, events_dir, warehouse, out_dir, through.date(), payments_dir)
    except Exception as exc:  # a refusal raised inside a step (a credit note that cannot be issued)
        problems = refused(exc)
        if problems is None:
            raise
        click.echo("the run stopped before billing anything:\n" + "\n".join(f"- {p}" for p in problems), err=True)
        sys.exit(2)
    click.echo(json.dumps(summary, indent=2))
    # The process ends here: Python's last collection of every object left (Dagster's, dbt's
    # manifest) took about 1 s of each run. Frozen objects are skipped; the OS takes the memory back.
    gc.freeze()


def refused(exc: BaseException) -> list[str] | None:
    """The problems of a refusal (an error with `problems`, such as `CreditNoteRefused`) that a
    failed run raised, through Dagster's wrapping; None for any other failure."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ValueError) and isinstance(getattr(exc, "problems", None), list):
            return exc.problems
        exc = getattr(exc, "user_exception", None) or exc.__cause__ or exc.__context__
    return None


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
