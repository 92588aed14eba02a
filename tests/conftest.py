import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The tests choose their Spark themselves (a server of the test session, or the run's own): a Spark
# Connect server of the shell that runs them is not theirs, nor would it say whether Java is here.
os.environ.pop("SPARK_REMOTE", None)
# The Spark tests' JVMs (the Connect server a module shares, each run's own Spark) live a few
# minutes and bill a few hundred events: the JVM's quick compiler alone (C1, no C2) with its
# one-thread garbage collector (Serial, not G1) use less CPU, which matters where the two test
# workers' JVMs share 2 cores. Measured in session 27 (docs/performance.md): `make test-spark`
# 423-427 s against 523 s in the same hour (JVMs' CPU 462 s against 615 s); neither option alone
# was a reliable gain. Only in the tests: a run of the product keeps the JVM's defaults, made for
# months of events. (Each JVM says "Picked up JDK_JAVA_OPTIONS" on its standard error.) A value
# the caller sets is kept.
os.environ.setdefault("JDK_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
SHARED = REPO.parent / "shared"
OPENAPI = SHARED / "reference" / "lago-openapi" / "openapi.yaml"

# `make test` runs the suite on several workers (pytest-xdist, `--dist loadfile`): each module runs
# whole on one worker, so that its module-scoped fixtures bill a scenario once. The slowest modules
# start first (sequential seconds measured on 2 cores), so that no worker is left with a long module
# while the other has finished.
SLOW_FIRST = (
    # three scenarios on one Spark Connect server, each on DuckDB too
    "tests/e2e/test_spark_engine.py",
    "tests/e2e/test_spark_incremental.py",  # two Spark runs, each its own Spark, and one DuckDB run
    "tests/e2e/test_golden_outputs.py",  # ~240 s
    "tests/test_cli.py",  # ~230 s
    "tests/test_bench_incremental.py",  # ~220 s
    "tests/e2e/test_daily_runs_equal_one_backfill.py",  # ~205 s
    "tests/e2e/test_eu_vat_and_grace.py",  # ~185 s
    "tests/e2e/test_analytics.py",  # with test_wallets_and_payments (SAME_WORKER): ~175 s
    "tests/e2e/test_wallets_and_payments.py",
    "tests/e2e/test_new_york_month_end.py",  # with test_kill_and_rerun (SAME_WORKER): ~165 s
    "tests/e2e/test_kill_and_rerun.py",
    "tests/test_orchestration.py",  # ~80 s
    "tests/e2e/test_usage_model_selection.py",  # ~70 s
    "tests/test_hostile_input.py",  # ~45 s
    "tests/e2e/test_corrections.py",  # ~150 s
    "tests/e2e/test_every_charge_model.py",  # ~45 s
    "tests/e2e/test_period_rules.py",  # ~40 s
)
# Modules that read the same session-scoped fixture run on the same worker, which computes it once.
# (Not with xdist_group marks and `--dist loadgroup`: with pytest 9.2 they are silently ignored,
# pytest-xdist issue #1386.)
SAME_WORKER = {
    "tests/e2e/test_analytics.py": "wallets_billed",
    "tests/e2e/test_wallets_and_payments.py": "wallets_billed",
    "tests/e2e/test_new_york_month_end.py": "new_york_billed",
    "tests/e2e/test_kill_and_rerun.py": "new_york_billed",
}


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items):
    rank = {module: i for i, module in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(_module(item.nodeid), len(rank)))  # stable: the rest keep their order


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the modules of a SAME_WORKER group as one unit; in collection order
    (`--no-loadscope-reorder`), which is SLOW_FIRST's."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleGroups(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SAME_WORKER.get(_module(nodeid), _module(nodeid))

    return ModuleGroups(config, log)


def pytest_sessionstart(session):
    """With workers, dbt's manifest is prepared (`dbt parse` into dbt_project/target, when missing or
    older than the project) once, here in the controller before any worker starts: otherwise the
    first `meterhouse run` of each worker would parse into the same folder at the same time."""
    import subprocess
    import sys

    if not session.config.pluginmanager.hasplugin("dsession"):  # not the controller of a parallel run
        return
    result = subprocess.run([sys.executable, "-c", "from dagster_project.defs.dbt import dbt_project; dbt_project()"],
                            capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:  # the tests that need dbt fail and show why; this says it first
        if reporter := session.config.pluginmanager.get_plugin("terminalreporter"):
            reporter.write_line(f"dbt parse before the workers start failed:\n{result.stderr[-3000:]}", red=True)


@pytest.fixture(scope="session", autouse=True)
def dagster_home(tmp_path_factory):
    """Dagster runs in tests use a throwaway instance directory."""
    home = tmp_path_factory.mktemp("dagster_home")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_meterhouse(catalog, events, work, through, payments=None, extra=()):
    """`meterhouse run` as a user types it, in a subprocess, into `work/warehouse.duckdb` and `work/out`
    (`extra`: more options)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(catalog), "--events", str(events),
         "--warehouse", str(work / "warehouse.duckdb"), "--out", str(work / "out"), "--through", through,
         *(["--payments", str(payments)] if payments else []), *extra],
        capture_output=True, text=True, cwd=REPO,
    )
    log = work / "warehouse.duckdb.log"  # Dagster's and dbt's logs; the console has the error and the steps
    assert result.returncode == 0, (result.stdout[-2000:] + result.stderr[-3000:]
                                    + (log.read_text(errors="replace")[-5000:] if log.exists() else ""))
    return work / "out"


def bill_scenario(tmp_path_factory, name, through):
    """Copy a scenario's events to a fresh folder and bill it; the outputs folder."""
    import shutil

    scenario = REPO / "tests" / "scenarios" / name
    work = tmp_path_factory.mktemp(name)
    shutil.copytree(scenario / "events", work / "events")
    return run_meterhouse(scenario / "catalog", work / "events", work, through)


def published_invoice(out, number):
    """The Lago invoice object of `out/invoices/<number>.json`."""
    import json

    return json.loads((out / "invoices" / f"{number}.json").read_text())["invoice"]


def materialize_usage_models(catalog, work, through, keys, engine="duckdb"):
    """Some of the usage models (asset keys `layer/name`) materialized on the warehouse of `work`,
    as an operator selects them in Dagster's UI, in this process: (success, the failed steps'
    error messages)."""
    import dagster as dg

    from dagster_project.definitions import build_definitions
    from dagster_project.defs.resources import MeterhouseSettings

    settings = MeterhouseSettings(catalog_dir=str(catalog), events_dir=str(work / "events"),
                                  warehouse_path=str(work / "warehouse.duckdb"), out_dir=str(work / "out"),
                                  through=through, engine=engine)
    defs = build_definitions(settings)
    environment = dict(os.environ)  # (the build sets dbt's variables in it: not left to the next tests)
    try:
        result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(*(key.split("/") for key in keys)),
                                resources=dict(defs.resources), instance=dg.DagsterInstance.ephemeral(),
                                raise_on_error=False)
    finally:
        os.environ.clear()
        os.environ.update(environment)
    return result.success, [event.step_failure_data.error.message for event in result.get_step_failure_events()]


def snapshot(folder):
    """Every file under `folder`, by relative path: its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def wallets_billed(tmp_path_factory):
    """tests/scenarios/wallets billed through 2026-11-03 with its payments file: the work folder
    (warehouse.duckdb, out/), read by test_wallets_and_payments and test_analytics (SAME_WORKER)."""
    import shutil

    scenario = REPO / "tests" / "scenarios" / "wallets"
    work = tmp_path_factory.mktemp("wallets")
    shutil.copytree(scenario / "events", work / "events")
    run_meterhouse(scenario / "catalog", work / "events", work, "2026-11-03", payments=scenario / "payments")
    return work


@pytest.fixture(scope="session")
def new_york_billed(tmp_path_factory):
    """tests/scenarios/new_york_month_end billed through 2026-11-05 on a fresh warehouse, then the same
    command again: (work folder, outputs after the first run, outputs after the second). Read by
    test_new_york_month_end and test_kill_and_rerun (SAME_WORKER)."""
    import shutil

    scenario = REPO / "tests" / "scenarios" / "new_york_month_end"
    work = tmp_path_factory.mktemp("new_york")
    shutil.copytree(scenario / "events", work / "events")
    run_meterhouse(scenario / "catalog", work / "events", work, "2026-11-05")
    first = snapshot(work / "out")
    run_meterhouse(scenario / "catalog", work / "events", work, "2026-11-05")
    return work, first, snapshot(work / "out")


def assert_lago_schemas(out_dir, folders=(("invoices", "Invoice"), ("current_usage", "CustomerUsage"), ("wallets", "Wallet"))):
    """Every JSON output file validates against its schema in Lago's OpenAPI file, read in place."""
    import json

    import jsonschema
    import yaml

    spec = yaml.safe_load(OPENAPI.read_text())
    for folder, schema_name in folders:
        validator = jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]})
        files = sorted((out_dir / folder).glob("*.json"))
        assert files, f"no {folder} files"
        for path in files:
            errors = list(validator.iter_errors(json.loads(path.read_text())))
            assert not errors, f"{path.name}: {[e.message for e in errors[:3]]}"
