from types import SimpleNamespace

import duckdb
import pytest

from tests.conftest import run_meterhouse

# (the "about 2g of driver memory"; no web UI on a test machine)
PLAIN_CONNECT_SERVER = {"spark.driver.memory": "2g", "spark.ui.enabled": "false"}


@pytest.fixture(scope="module")
def spark_connect_server(tmp_path_factory):
    """One Spark Connect server (`local[2]`) that a module's Spark runs share as a user's server
    elsewhere would be (`SPARK_REMOTE=sc://...`): started as Spark's `sbin/start-connect-server.sh`
    starts one, with no catalog or warehouse setting, so its catalog is Spark's default, in memory (no
    metastore; the run's own Spark keeps a Hive metastore, `spark_server.static_settings`), and its
    warehouse folder is `spark-warehouse/` in its working directory, a folder of the test session
    and no warehouse's. Several warehouses are billed on it, each in its own databases, with their
    tables under their own `<warehouse>.spark/`; one JVM warmed up once instead of one started per
    run, and stopped after the module (not left idle beside the rest of the worker's tests). Its
    URL (`.url`) and folder (`.folder`)."""
    from dagster_project import spark_server

    folder = tmp_path_factory.mktemp("spark-connect-server")
    server = spark_server.start(folder, "local[2]", log=lambda message: None,
                                settings=PLAIN_CONNECT_SERVER)
    yield SimpleNamespace(url=server.url, folder=folder)
    spark_server.stop(folder)


def run_on_spark_connect(url, catalog, events, work, through):
    """`meterhouse run --engine spark` with SPARK_REMOTE=`url` (the run's subprocess inherits it)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SPARK_REMOTE", url)
        return run_meterhouse(catalog, events, work, through, extra=["--engine", "spark"])


def assert_read_by_spark(work, not_utf8, where):
    """The files the warehouse counts as loaded, as the run's log says Spark (`where`) and DuckDB's
    loader read them."""
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        loaded = con.execute("select count(*) from raw.landing_files where status = 'loaded'").fetchone()[0]
    log = (work / "warehouse.duckdb.log").read_text(errors="replace")
    assert loaded > not_utf8
    assert f"landing files: {loaded - not_utf8} read by {where}, {not_utf8} by DuckDB's loader" in log
