"""Jobs, schedules and the landing-folder sensor.

`daily_billing_job` loads one arrival day (a partition of `raw/events`) and rebuilds everything
downstream as of that day: usage, current usage, wallet balances and top-ups, invoices due. The
billing date of the downstream assets is the partition's day, passed in the run config, so a run
for a day bills as of that day whatever the wall clock says.
"""

import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg

from dagster_project.defs.partitions import arrival_days, billing_months
from dagster_project.defs.resources import MeterhouseSettings
from dagster_project.ingest.events import arrival_dates, day_files

PERIOD_INVOICES = dg.AssetSelection.assets(["outputs", "period_invoices"])
BILLING = dg.AssetSelection.groups("billing", "billing_marts", "analytics", "outputs")

daily_billing_job = dg.define_asset_job(
    "daily_billing_job",
    selection=dg.AssetSelection.all() - PERIOD_INVOICES,
    partitions_def=arrival_days,
    description="Load one arrival day and bill as of that day: usage, current usage, wallets, invoices due.",
)

period_end_job = dg.define_asset_job(
    "period_end_job",
    selection=BILLING,
    partitions_def=billing_months,
    description="Price and invoice as of the run's billing date, and publish one billing month's invoices "
                "(`periods/YYYY-MM/`).",
)


def billing_run_config(day: str) -> dict:
    """Run config that bills as of `day` (YYYY-MM-DD)."""
    return {"resources": {"billing_date": {"config": {"through": day}}}}


@dg.schedule(job=daily_billing_job, cron_schedule="30 0 * * *", execution_timezone="UTC")
def daily_billing_schedule(context: dg.ScheduleEvaluationContext):
    """Every night at 00:30 UTC: yesterday's arrival day, billed as of yesterday."""
    day = (context.scheduled_execution_time.astimezone(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=day, partition_key=day, run_config=billing_run_config(day))


@dg.schedule(job=period_end_job, cron_schedule="0 2 3 * *", execution_timezone="UTC")
def period_end_schedule(context: dg.ScheduleEvaluationContext):
    """On the 3rd of each month at 02:00 UTC: last month's billing periods, billed as of the 2nd.

    Monthly periods end on the 1st; their invoices are finalized once the 1st's folder is complete
    (a run billing through the 2nd), unless a grace period keeps them drafts longer: rerun that
    month's partition from the UI once it has passed.
    """
    today = context.scheduled_execution_time.astimezone(dt.timezone.utc).date()
    month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1).isoformat()
    day = (today - dt.timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=f"period-end-{month}", partition_key=month, run_config=billing_run_config(day))


def folder_fingerprint(events_dir: Path, day: dt.date) -> str:
    """Names, sizes and modification times of a day's event files: changes when a file lands."""
    parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in day_files(events_dir, day)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dg.sensor(job=daily_billing_job, minimum_interval_seconds=120, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_folder_sensor(context: dg.SensorEvaluationContext, settings: MeterhouseSettings):
    """A day folder that appears or changes is loaded and billed within minutes, so current usage
    and ongoing wallet balances stay close to real time. The cursor remembers each day's files."""
    events_dir = Path(settings.events_dir)
    seen = json.loads(context.cursor) if context.cursor else {}
    requests = []
    for day in arrival_dates(events_dir):
        fingerprint = folder_fingerprint(events_dir, day)
        if not day_files(events_dir, day) or seen.get(day.isoformat()) == fingerprint:
            continue
        seen[day.isoformat()] = fingerprint
        requests.append(
            dg.RunRequest(
                run_key=f"{day.isoformat()}:{fingerprint}",
                partition_key=day.isoformat(),
                run_config=billing_run_config(day.isoformat()),
            )
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
