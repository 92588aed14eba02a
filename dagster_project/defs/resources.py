"""The settings every asset shares: where the catalog, the landing folder, the warehouse and the
outputs are, and the date the run bills through."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb

from dagster_project.store import periods, warehouse_file

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = PROJECT_ROOT / "seeds" / "mistral"
# DuckDB's checkpoint merges a table's part-filled row groups ("vacuum"). A large append leaves one
# (a day of 666,666 events: five full groups and a sixth part-filled), so every daily load and
# usage-model build rewrote about a day's rows when its connection closed (0.5 s each at 20M events
# a month). Off here and in dbt's profile: a table keeps one part-filled group per large append;
# row groups emptied by deletes are still dropped, and small appends still fill the last group.
VACUUM_TASKS = 0


class MeterhouseSettings(dg.ConfigurableResource):
    """Paths and the billing date. Defaults: the bundled Mistral example (see `from_env`)."""

    catalog_dir: str
    events_dir: str
    warehouse_path: str
    out_dir: str
    # Folder of payments CSV files (see `ingest/payments.py`); empty: no payments recorded.
    payments_dir: str = ""
    # Bill through this date (YYYY-MM-DD): invoices due by then, current usage of the open period.
    # Empty: the latest arrival date loaded.
    through: str = ""
    # DuckDB's cap, not the process's: at 20M events dbt's process peaked at 4.26 GiB with 4GB here
    # (docs/performance.md), so 3GB leaves room for Python and dbt under a 4 GiB budget.
    duckdb_memory_limit: str = "3GB"
    duckdb_threads: int = 2
    # Where the usage models run: "duckdb" (the warehouse itself) or "spark" (dbt-spark, the
    # optional extra `spark`; its files under `<warehouse>.spark/`), and Spark's master.
    engine: str = "duckdb"
    spark_master: str = "local[*]"

    @classmethod
    def from_env(cls) -> MeterhouseSettings:
        root = Path(os.environ.get("METERHOUSE_HOME", PROJECT_ROOT))
        return cls(
            catalog_dir=os.environ.get("METERHOUSE_CATALOG", str(EXAMPLE / "catalog")),
            events_dir=os.environ.get("METERHOUSE_EVENTS", str(EXAMPLE / "events")),
            warehouse_path=os.environ.get("METERHOUSE_WAREHOUSE", str(root / "warehouse" / "meterhouse.duckdb")),
            out_dir=os.environ.get("METERHOUSE_OUT", str(root / "warehouse" / "out")),
            payments_dir=os.environ.get("METERHOUSE_PAYMENTS", str(EXAMPLE / "payments")),
            through=os.environ.get("METERHOUSE_THROUGH", ""),
        )

    @property
    def warehouse(self) -> Path:
        return Path(self.warehouse_path).resolve()

    @property
    def spark_dir(self) -> Path:
        """Spark's metastore, tables and source files for this warehouse: `<warehouse>.spark/`."""
        return self.warehouse.parent / f"{self.warehouse.name}.spark"

    def session_settings(self) -> list[str]:
        """What every connection that may write the warehouse sets first (UTC, the memory cap, no
        vacuum merges); also the connection that holds it open for a run (`warehouse_file`)."""
        return ["set TimeZone = 'UTC'", f"set memory_limit = '{self.duckdb_memory_limit}'",
                f"set threads = {int(self.duckdb_threads)}", f"set max_vacuum_tasks = {VACUUM_TASKS}"]

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection with the settings every step relies on (UTC, memory cap)."""
        self.warehouse.parent.mkdir(parents=True, exist_ok=True)
        con = warehouse_file.connect(self.warehouse)  # (within a run: a connection on its open database)
        try:
            for statement in self.session_settings():
                con.execute(statement)
            yield con
        finally:
            con.close()

    def through_date(self, con: duckdb.DuckDBPyConnection, override: str = "") -> dt.date | None:
        """The billing date: `override` (a run's billing date), else `through`, else the latest
        arrival date loaded."""
        if override or self.through:
            return dt.date.fromisoformat(override or self.through)
        try:
            return periods.latest_arrival(con)
        except duckdb.CatalogException:
            return None


class BillingDate(dg.ConfigurableResource):
    """A run's billing date (YYYY-MM-DD), set by schedules and the sensor in the run config; empty:
    the settings' `through`, else the latest arrival date loaded."""

    through: str = ""


def checked_catalog(parsed: object = None) -> dg.ResourceDefinition:
    """The catalog the command line already parsed and checked (`pipeline.check_inputs`), for the
    catalog asset, so that a `meterhouse run` parses the folder once; None (the UI, schedules,
    sensors): the asset parses `settings.catalog_dir` itself."""
    return dg.ResourceDefinition.hardcoded_resource(parsed, "the catalog parsed before the run, if any")
