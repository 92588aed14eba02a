"""Run the Dagster definitions in-process, as `meterhouse run`, `meterhouse check` and the tests do:
the inputs checked first, the runs' steps reported to an observer, and what a run did read back
from the warehouse (the invoices it finalized, the events it rejected)."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import dagster as dg
import duckdb

from dagster_project import spark_server
from dagster_project.defs.resources import MeterhouseSettings
from dagster_project.ingest.events import arrival_dates, day_files
from dagster_project.store import warehouse_file
from dagster_project.warm_dbt import warm_dbt

# ---- the inputs, checked before anything is written -----------------------------------------------


class InputProblems(Exception):
    """Inputs a run must not start from; `problems` names each path, file and field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Inputs:
    catalog: object  # the checked `Catalog`
    arrival_days: list[dt.date]  # every arrival-day folder with an event file ([] without one)


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be read as an input folder, or None."""
    if not folder.exists():
        return "no such folder"
    if not folder.is_dir():
        return "not a folder"
    try:
        with os.scandir(folder) as entries:
            next(entries, None)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    return None


ALLOW_NO_EVENTS = "--allow-no-events"


def no_events_problem(events_dir: Path, days: list[dt.date], through: dt.date | None) -> str | None:
    """A run that would load no event at all: no arrival-day folder, or a billing date before the
    first one. Its invoices would be finalized without their usage (and their numbers used up for
    good), so it is refused unless asked for with ALLOW_NO_EVENTS."""
    if not days:
        return (f"--events {events_dir}: no arrival-day folder (YYYY-MM-DD/) with an event file in it, so no event "
                f"would be loaded and invoices would be finalized without usage; pass {ALLOW_NO_EVENTS} if that is "
                f"intended")
    if through is not None and through < days[0]:
        return (f"--through {through} is before the first arrival day in {events_dir} ({days[0]}), so no event "
                f"would be loaded and invoices would be finalized without usage; pass {ALLOW_NO_EVENTS} if that "
                f"is intended")
    return None


def quiet_since_problem(days: list[dt.date], through: dt.date) -> str | None:
    """A warning when the billing date is after the last arrival day with events: the invoices
    finalized by the run hold no usage that arrived since (a landing that stopped, or a mistyped
    date); a rerun with the missing folders would find it late."""
    if days and through > days[-1]:
        return (f"no event arrived after {days[-1]} (the last arrival-day folder with events), but the run bills "
                f"through {through}: the invoices it finalizes hold no usage that arrived in between")
    return None


def check_inputs(catalog_dir: Path, events_dir: Path | None, payments_dir: Path | None = None,
                 through: dt.date | None = None, allow_no_events: bool = False,
                 accepted_catalog: str | None = None) -> Inputs:
    """Every problem of a run's inputs at once (missing or unreadable folders, a bad catalog, no
    events to bill from), as `InputProblems`; nothing is written. `accepted_catalog`: the
    `catalog_digest` of the catalog the warehouse was last written from (`accepted_catalog_digest`);
    a catalog folder with that digest (the same files, checked by the same code) is not parsed
    again (`Inputs.catalog` is None: the run finds its tables up to date)."""
    from dagster_project.catalog import CatalogError, read_catalog
    from dagster_project.store.catalog_tables import catalog_digest

    problems, unreadable = [], set()
    for option, folder in (("--catalog", catalog_dir), ("--events", events_dir), ("--payments", payments_dir)):
        if folder is not None and (problem := folder_problem(Path(folder))):
            problems.append(f"{option} {folder}: {problem}")
            unreadable.add(option)
    catalog = None
    if "--catalog" not in unreadable and (accepted_catalog is None or catalog_digest(Path(catalog_dir)) != accepted_catalog):
        try:
            catalog = read_catalog(catalog_dir)
        except CatalogError as exc:
            problems.append(str(exc))
    days = []
    if events_dir is not None and "--events" not in unreadable:
        # (an empty day folder brings no event: it does not count)
        days = [day for day in arrival_dates(Path(events_dir)) if day_files(Path(events_dir), day)]
        problem = no_events_problem(Path(events_dir), days, through)
        if problem and not allow_no_events:
            problems.append(problem)
    if problems:
        raise InputProblems(problems)
    return Inputs(catalog, days)


# ---- running the definitions ------------------------------------------------------------------------


class Observer(Protocol):
    def step_done(self, step_key: str, seconds: float, assets: dict[str, dict]) -> None:
        """A step succeeded; `assets`: asset path ("catalog/plans") -> its materialization metadata."""

    def flush(self) -> None:
        """One of the pipeline's Dagster runs ended."""


# Errors a step raises to refuse its input (a credit note that cannot be issued): the input is
# wrong, not the run, so the command says what to fix and exits as for any refused input.
REFUSALS = ("CreditNoteRefused", "CatalogError")


class RunFailed(RuntimeError):
    """A Dagster run of the pipeline failed; `failures`: (step, error message) of each failed step;
    `refusals`: the messages of the steps that refused their input (`REFUSALS`)."""

    def __init__(self, selection: str, failures: list[tuple[str, str]], refusals: list[str] = ()):
        self.failures = failures
        self.refusals = list(refusals)
        detail = "".join(f"\n{step}: {message}" for step, message in failures)
        super().__init__(f"run failed: {selection}{detail}")


@dataclass
class _StepEvents:
    """Dagster's events of one run, as the observer's calls; the failed steps kept."""

    observer: Observer | None
    started: dict[str, float] = field(default_factory=dict)
    assets: dict[str, dict[str, dict]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def __call__(self, entry) -> None:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            return
        step, kind = event.step_key, event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            self.started[step] = time.monotonic()
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            self.assets.setdefault(step, {})["/".join(materialization.asset_key.path)] = metadata
        elif kind == dg.DagsterEventType.STEP_SUCCESS and self.observer is not None:
            seconds = time.monotonic() - self.started.pop(step, time.monotonic())
            self.observer.step_done(step, seconds, self.assets.pop(step, {}))
        elif kind == dg.DagsterEventType.STEP_SKIPPED:  # (an asset it reads got no result: nothing to build on)
            self.failures.append((step, "skipped: an asset it depends on was not materialized"))
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:  # the user code's error, not Dagster's wrapper
                error = error.cause
            self.failures.append((step, error.message.strip() if error is not None else "failed"))
            if error is not None and error.cls_name in REFUSALS:
                self.refusals.append(error.message.split(": ", 1)[-1].strip())


def run_pipeline(catalog_dir: Path, events_dir: Path, warehouse: Path, out_dir: Path, through: dt.date,
                 payments_dir: Path | None = None, observer: Observer | None = None, catalog: object = None,
                 engine: str = "duckdb", spark_master: str = "local[*]") -> dict:
    """Load arrival days up to `through` in one run, then build, price and publish in a second;
    the parsed `run_summary.json`. `observer` hears of each step that succeeds. `catalog`: the
    `Catalog` already parsed from `catalog_dir` (`check_inputs`), not parsed again. `engine`: where
    the usage models run, "duckdb" or "spark" (on `spark_master`).

    Both runs use the same definitions as `dagster dev`; the range is one run with a single dbt
    invocation, not one per day. dbt's commands go through one warm dbt process, started first so
    that its import of dbt overlaps the Dagster imports and the load (`warm_dbt.py`).
    """
    with warm_dbt():
        return _run(catalog_dir, events_dir, warehouse, out_dir, through, payments_dir, observer, catalog,
                    engine, spark_master)


JOB_NAME = "__ephemeral_asset_job__"  # the name `dg.materialize` gives its job

# Python's cyclic collector while a run's steps run: a young collection once 50,000 new container
# objects are alive instead of 700 (Python's default), and the older generations a little less
# often relative to it (20 instead of 10). The steps allocate by the hundred thousand (rows, frames,
# Dagster's events) and free nearly all of it by reference counting. With Python's thresholds, one
# day at 20,000 subscriptions made 11 full collections in its steps, each walking every object
# left unfrozen (about 0.5 s in all); with these, none, and the young collections found as many
# cycles (about 60,000 objects in both). Between two young collections, at most 50,000 objects
# wait.
STEPS_GC_THRESHOLD = (50_000, 20, 20)


def _run(catalog_dir: Path, events_dir: Path, warehouse: Path, out_dir: Path, through: dt.date,
         payments_dir: Path | None, observer: Observer | None = None, catalog: object = None,
         engine: str = "duckdb", spark_master: str = "local[*]") -> dict:
    from dagster_project.definitions import build_definitions

    settings = MeterhouseSettings(
        catalog_dir=str(Path(catalog_dir).resolve()),
        events_dir=str(Path(events_dir).resolve()),
        warehouse_path=str(Path(warehouse).resolve()),
        out_dir=str(Path(out_dir).resolve()),
        payments_dir=str(Path(payments_dir).resolve()) if payments_dir else "",
        through=through.isoformat(),
        engine=engine,
        spark_master=spark_master,
    )
    defs = build_definitions(settings, catalog)
    assets = list(defs.assets)
    resources = dict(defs.resources)
    instance = dg.DagsterInstance.ephemeral()

    def materialize(selection, tags=None) -> None:
        # `dg.materialize`, with a run id known beforehand, so that the run's events reach `steps`, and
        # with the asset checks of the definitions, which `dg.materialize` leaves out (the money
        # checks of defs/checks.py did not run under `meterhouse run` before)
        run_id = str(uuid.uuid4())
        steps = _StepEvents(observer)
        instance.add_event_listener(run_id, steps)
        job = dg.Definitions(jobs=[dg.define_asset_job(JOB_NAME, selection=selection)], assets=assets,
                             asset_checks=list(defs.asset_checks), resources=resources).resolve_job_def(JOB_NAME)
        result = job.execute_in_process(instance=instance, tags=tags, run_id=run_id, raise_on_error=False)
        if observer is not None:
            observer.flush()
        if not result.success or steps.failures:  # (a skipped step leaves the run a success to Dagster)
            raise RunFailed(str(selection), steps.failures, steps.refusals)

    # What exists by now (the imported modules, the definitions, the instance) lives as long as the
    # runs: kept out of Python's cyclic garbage collection meanwhile, whose full collections would
    # otherwise walk it again and again (0.3 s of a one-day run). Released to it afterwards.
    # (`meterhouse run` turns collection off for its start-up: on for the steps.) Young
    # collections come less often while the steps run (STEPS_GC_THRESHOLD). Afterwards, the
    # caller's thresholds are back, and collection is on or off as the caller had it.
    gc.freeze()
    threshold, was_enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(*STEPS_GC_THRESHOLD)
    gc.enable()
    try:
        with spark_server.one_spark_per_run(settings.spark_dir) if engine == "spark" else contextlib.nullcontext(), \
                warehouse_file.held_open(settings.warehouse, settings.session_settings()):  # (the steps share one open database)
            _materialize_all(materialize, events_dir, through)
    finally:
        gc.set_threshold(*threshold)
        if not was_enabled:
            gc.disable()
        gc.unfreeze()
    return json.loads((Path(out_dir) / "run_summary.json").read_text())


def _materialize_all(materialize, events_dir: Path, through: dt.date) -> None:
    """Ingest, then the arrival days as one partition range, then everything downstream."""
    materialize(dg.AssetSelection.groups("ingest") - dg.AssetSelection.assets(["raw", "events"]))
    days = [d for d in arrival_dates(Path(events_dir)) if d <= through]
    if days:
        materialize(
            dg.AssetSelection.assets(["raw", "events"]),
            tags={
                "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": through.isoformat(),
            },
        )
    # The monthly invoice folders (`outputs/period_invoices`) are the period-end job's, per month.
    materialize(dg.AssetSelection.all() - dg.AssetSelection.groups("ingest") - dg.AssetSelection.assets(["outputs", "period_invoices"]))


# ---- a copy to bill without writing anything -----------------------------------------------------------

BESIDE_THE_WAREHOUSE = (".wal", ".dbt", ".pdf-cache")  # DuckDB's log, dbt's target folders, rendered PDFs


@contextlib.contextmanager
def scratch_copy(warehouse: Path | None) -> Iterator[Path]:
    """A temporary folder (in TMPDIR) holding a copy of `warehouse`, if it exists, and of what lies
    beside it (BESIDE_THE_WAREHOUSE); deleted afterwards, whatever happens. Yields the copy's path
    (the folder also serves as OUT and for the log)."""
    with tempfile.TemporaryDirectory(prefix="meterhouse-scratch-") as folder:
        copy = Path(folder) / (warehouse.name if warehouse else "warehouse.duckdb")
        if warehouse is not None and warehouse.is_file():
            shutil.copy2(warehouse, copy)
            for suffix in BESIDE_THE_WAREHOUSE:
                beside = warehouse.with_name(warehouse.name + suffix)
                if beside.is_dir():
                    shutil.copytree(beside, copy.with_name(copy.name + suffix))
                elif beside.is_file():
                    shutil.copy2(beside, copy.with_name(copy.name + suffix))
        yield copy


# ---- what a run did, read back from the warehouse -----------------------------------------------------


def _read(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of a read-only query; [] when the warehouse or the table does not exist yet."""
    if not Path(warehouse).is_file():
        return []
    con = warehouse_file.connect(warehouse, read_only=True)  # (the run's open database, during a run)
    try:
        return con.execute(sql, params or []).fetchall()
    except duckdb.CatalogException:
        return []
    finally:
        con.close()


def accepted_catalog_digest(warehouse: Path) -> str | None:
    """The `catalog_digest` of the catalog folder the warehouse's catalog tables were last written
    from (`state.dbt_builds`, selection `catalog`: recorded only after the catalog was parsed,
    checked and written); None for a new warehouse, or one another process holds (the run then
    says it is busy)."""
    try:
        found = _read(warehouse, "select inputs_digest from state.dbt_builds where selection = 'catalog'")
    except duckdb.Error:
        return None
    return found[0][0] if found else None


def finalized_invoice_ids(warehouse: Path) -> set[str]:
    """The invoices finalized for good so far (`billing.finalized_invoices`, append-only)."""
    return {row[0] for row in _read(warehouse, "select invoice_id from billing.finalized_invoices")}


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    number: str
    status: str
    invoice_type: str
    external_customer_id: str
    period_start_date: dt.date | None
    period_end_date: dt.date | None
    total_amount_cents: int
    currency: str


def invoices(warehouse: Path, finalized_before: set[str] | None = None) -> list[Invoice]:
    """Every invoice with its total (after taxes and credits: the amount due), by number; given
    `finalized_before` (`finalized_invoice_ids()` before a run), the drafts and the invoices
    finalized since only (a daily run at 20,000 customers read 20,000 finalized invoices it did not
    show)."""
    since = "" if finalized_before is None else (
        "where status = 'draft' or (status = 'finalized' and invoice_id not in (select unnest(?::varchar[])))")
    return [Invoice(*row) for row in _read(
        warehouse,
        f"""select invoice_id, number, status, invoice_type, external_customer_id, period_start_date,
                   period_end_date, total_amount_cents, currency
            from marts.fct_invoices {since} order by number""",
        None if finalized_before is None else [sorted(finalized_before)],
    )]


def event_outcomes(warehouse: Path, through: dt.date) -> dict[str, int]:
    """Events of the arrival days up to `through`: accepted, duplicate, rejected, late."""
    rows = _read(
        warehouse,
        """select coalesce(sum(events_accepted), 0), coalesce(sum(events_duplicate), 0),
                  coalesce(sum(events_rejected), 0), coalesce(sum(events_late), 0)
           from marts.fct_event_loads where arrival_date <= ?""",
        [through],
    )
    accepted, duplicate, rejected, late = rows[0] if rows else (0, 0, 0, 0)
    return {"accepted": int(accepted), "duplicate": int(duplicate), "rejected": int(rejected), "late": int(late)}


@dataclass(frozen=True)
class Rejections:
    reason: str
    count: int
    examples: list[str]  # `2026-10-03/api.jsonl line 17: detail`


def _rejections(rows: list[tuple]) -> list[Rejections]:
    """rows: (reason, count, [(file, line, detail)...]) -> Rejections, the most frequent first."""
    return [
        Rejections(reason, int(count), [f"{file} line {line}" + (f": {detail}" if detail else "")
                                        for file, line, detail in examples])
        for reason, count, examples in sorted(rows, key=lambda r: (-r[1], r[0]))
    ]


def rejected_events(warehouse: Path, examples: int = 3) -> list[Rejections]:
    """The quarantined events (`marts.fct_events_rejected`) by reason, with a few examples each."""
    return _rejections(_read(
        warehouse,
        """select rejection_reason, count(*),
                  list((source_file, line_number, rejection_detail)
                       order by arrival_date, source_file, line_number, item_index)[1:?]
           from marts.fct_events_rejected group by 1""",
        [examples],
    ))


def rejected_payments(warehouse: Path, examples: int = 3) -> list[Rejections]:
    """The payment rows quarantined (`raw.payments_rejected`) by reason, with a few examples each."""
    return _rejections(_read(
        warehouse,
        """select reason, count(*), list((source_file, line_number, null) order by source_file, line_number)[1:?]
           from raw.payments_rejected group by 1""",
        [examples],
    ))
