"""The dbt project as Dagster assets: usage models before pricing, billing marts after it."""


import contextlib
import dataclasses
import functools
import graphlib
import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from packaging import version

from dagster_project import spark_server
from dagster_project.defs.resources import PROJECT_ROOT, MeterhouseSettings
from dagster_project.ingest.events import ensure_raw_schema
from dagster_project.store import spark_exchange, warehouse_file
from dagster_project.store.dbt_builds import inputs_digest, record_build, up_to_date, views_digest
from dagster_project.store.usage_state import (NOTHING_TO_REBUILD, forget_usage_state, plan_usage_rebuild,
                                                record_usage_state, tables_kept_by_last_build)

DBT_DIR = PROJECT_ROOT / "dbt_project"
USAGE_MODELS = "path:seeds path:models/staging path:models/intermediate path:models/marts/usage path:tests"
# Marts over the priced tables (billing.*): they run after the pricing step.
BILLING_MARTS = "path:models/marts/billing path:models/marts/analytics"
# The warehouse tables each selection reads (`raw.day_loads` stands for the events: it holds each
# loaded day's content signature), and the selections whose models it reads.
SELECTION_INPUTS = {
    "usage_models": (("raw.day_loads", "catalog.*", "calendar.*"), ()),
    "billing_marts": (("billing.*", "catalog.*", "calendar.*"), ("usage_models",)),
}


@functools.cache
def dbt_project() -> DbtProject:
    """The project, with its manifest prepared on first use (`dbt parse`), so importing this module
    needs no manifest and tests and the CLI work outside `dagster dev`."""
    project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
    if _manifest_is_stale(project.manifest_path):
        dbt_resource(project).cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project


def _manifest_is_stale(manifest: Path) -> bool:
    """Missing, or older than a file of the project (a model, seed, macro or test edited since)."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_DIR / "dbt_project.yml", *(p for d in ("models", "seeds", "macros", "tests")
                                             for p in (DBT_DIR / d).rglob("*") if p.is_file())]
    return any(p.stat().st_mtime > built for p in sources)


class Translator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props) -> str:
        path = dbt_resource_props.get("original_file_path", "")
        if "marts/billing" in path:
            return "billing_marts"
        return "analytics" if "marts/analytics" in path else "warehouse"

    def get_owners(self, dbt_resource_props):
        return ["team:billing-data"]


def dbt_args(command: str) -> list[str]:
    """The dbt command line of the assets: unit tests are left to the test suite, where their vars
    are fixed; and no JSON artifacts in the run's target folder (`manifest.json` twice and
    `run_results.json`, about 0.3 s a command): Dagster's event log keeps each node's result and
    `dbt.log` what dbt printed. The project's own manifest, which Dagster reads, comes from `dbt
    parse` (`dbt_project()`), and partial parsing keeps its own file."""
    return [command, "--exclude", "resource_type:unit_test", "--no-write-json"]


# On DuckDB, dbt does not list every relation of the selection's schemas before a build (about
# 0.1 s of a command, for two or three relations it looks up); it looks up those it builds, when it
# builds them. (On Spark, where each lookup lists a whole schema, it still lists them once.)
DUCKDB_BUILD = ["--no-populate-cache"]


def point_dbt_at(settings: MeterhouseSettings) -> None:
    """dbt's profile reads the warehouse path from METERHOUSE_WAREHOUSE: the same absolute path
    the Python assets open, set before each invocation; and DuckDB's memory limit from the settings.

    dbt's log file (`dbt.log` in the target folder) keeps what dbt prints, at level info, unless
    DBT_LOG_LEVEL_FILE says otherwise (`debug` adds every SQL statement and adapter call). At dbt's
    default, debug, writing it cost 1.5-2 s of a one-day run of the usage models (1.6 MB a run).
    """
    os.environ["METERHOUSE_WAREHOUSE"] = str(settings.warehouse)
    os.environ["METERHOUSE_DUCKDB_MEMORY_LIMIT"] = settings.duckdb_memory_limit
    os.environ.setdefault("DBT_LOG_LEVEL_FILE", "info")


# dbt's partial parse in a target folder; and the latest one of each dbt target of Spark, and of
# DuckDB for each warehouse name, shared by every warehouse of this checkout (`<key>.msgpack`).
KEPT_PARSES = DBT_DIR / "target" / "kept_parses"
PARSE_FILE = "partial_parse.msgpack"


def _folder(selection: str, settings: MeterhouseSettings) -> Path:
    """One dbt target folder per selection and warehouse, kept between runs beside the warehouse
    (`<warehouse>.dbt/`, like DuckDB's `<warehouse>.tmp/`), so that dbt parses only what changed
    (partial parsing) instead of the whole project at every run, and a warehouse deleted with its
    folder leaves nothing behind in the project. Runs on one warehouse never overlap (one writer)."""
    return settings.warehouse.parent / f"{settings.warehouse.name}.dbt" / selection


# The selections dbt runs on DuckDB, each in its own target folder (`target_path()`).
DUCKDB_SELECTIONS = ("usage_models", "billing_marts")


def target_path(selection: str, settings: MeterhouseSettings) -> Path:
    """The target folder of a DuckDB selection (one of DUCKDB_SELECTIONS). A new one starts from
    the partial parse another selection's command left for this warehouse, or else from the one
    the last DuckDB command of this checkout kept for a warehouse of the same name
    (`duckdb_parse_key()`, `keep_parse()`).

    dbt keys a parse to the profile's connection keys, among them the warehouse's path: the
    project's own parse, which dagster-dbt copies into a new folder, was made for another path, so
    dbt threw it away and parsed the whole project ("profile has changed"), in each of a new
    warehouse's two commands (3.4 and 3.8 s of a 28 s run of the Mistral example on 2 cores). A
    parse made for this warehouse has the same keys, and so has one made for another warehouse of
    the same name where dbt runs in the warm dbt process, which leaves the folder out of the keys
    (`warm_dbt.parse_without_warehouse_folder`). dbt still checks the keys, its version, the
    project's files and the environment variables each file reads, and parses again what differs."""
    path = _folder(selection, settings)
    if not (path / PARSE_FILE).exists():
        made = [_folder(other, settings) / PARSE_FILE for other in DUCKDB_SELECTIONS if other != selection]
        for parsed in (p for p in [*made, KEPT_PARSES / f"{duckdb_parse_key(settings)}.msgpack"] if p.exists()):
            path.mkdir(parents=True, exist_ok=True)
            _copy_whole(parsed, path / PARSE_FILE)
            break
    return path


def duckdb_parse_key(settings: MeterhouseSettings) -> str:
    """The name under which the parses of DuckDB commands are kept (`keep_parse()`): the warehouse
    file's name without its suffix (dbt-duckdb's database name; dbt itself compares that name,
    this key only sorts the kept parses)."""
    return f"duckdb-{settings.warehouse.stem}"


def _copy_whole(source: Path, destination: Path) -> None:
    """Copy under a name of this process, then rename: a reader finds the whole file or none."""
    written = destination.with_name(f"{destination.name}.{os.getpid()}.partial")
    shutil.copyfile(source, written)
    os.replace(written, destination)


def spark_target_path(selection: str, settings: MeterhouseSettings, target: str) -> Path:
    """The target folder of a Spark selection (`_folder()`), given the partial parse that the last Spark command
    of this checkout kept for dbt target `target` (`keep_parse()`) when it has none yet: a new
    warehouse's dbt commands on Spark then parse only what changed, not the whole project (10 s
    a command at load 15). Without it dagster-dbt gives a new folder the project's own parse,
    made for DuckDB, which dbt-spark must throw away ("profile has changed"). The parse holds no
    warehouse path: dbt compares the profile's connection keys (Spark's host and schema, the same
    for every warehouse but on a Connect server elsewhere, where the schema names the warehouse:
    `spark_exchange.spark_database`, and a new warehouse's first command parses in full), its
    version, the project's files and the environment variables each file reads, and parses again
    what differs."""
    path = _folder(selection, settings)
    kept = KEPT_PARSES / f"{target}.msgpack"
    if kept.exists() and not (path / PARSE_FILE).exists():
        path.mkdir(parents=True, exist_ok=True)
        _copy_whole(kept, path / PARSE_FILE)
    return path


def keep_parse(path: Path, target: str) -> None:
    """Keep the partial parse a command wrote into its target folder `path`, as `target` (a dbt
    target of Spark, or `duckdb_parse_key()`), for the next warehouse's (`spark_target_path()`,
    `target_path()`). Written under a name of this process, then renamed: the runs of parallel
    test workers each find a whole file, the last one written."""
    parsed = path / PARSE_FILE
    if not parsed.exists():
        return
    KEPT_PARSES.mkdir(parents=True, exist_ok=True)
    _copy_whole(parsed, KEPT_PARSES / f"{target}.msgpack")


def _folders(selection: str) -> tuple[str, ...]:
    """The project folders of a selection (`path:...` terms), with the macros they use."""
    return (*(term.removeprefix("path:") for term in selection.split()), "macros")


def _relations(selection: str, materialized: tuple[str, ...] = ("table", "incremental", "view", "seed"),
               assets: Iterable[dg.AssetKey] | None = None) -> list[tuple[str, str]]:
    """(schema, name) of every table, view and seed the selection builds (or of those built as
    `materialized`; of those whose asset is one of `assets`), from the manifest."""
    nodes = _nodes(selection, materialized)
    if assets is not None:
        keys, translator = set(assets), Translator()
        nodes = [node for node in nodes if translator.get_asset_key(node) in keys]
    return sorted((node["schema"], node.get("alias") or node["name"]) for node in nodes)


def _manifest() -> dict:
    """The project's manifest, read once while its file stays the same (a build plans its views
    from it three times). Not to be changed by its readers."""
    path = dbt_project().manifest_path
    return _manifest_file(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _manifest_file(path: str, mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text())


def _tables_read(selection: str) -> list[tuple[str, str]]:
    """(schema, name) of the tables and sources the selection's views read, through the views and
    ephemeral models they read, from the manifest."""
    manifest = _manifest()
    nodes, sources = manifest["nodes"], manifest["sources"]
    read, seen = set(), set()
    todo = [dep for node in _nodes(selection, ("view",)) for dep in node["depends_on"]["nodes"]]
    while todo:
        unique_id = todo.pop()
        if unique_id in seen:
            continue
        seen.add(unique_id)
        if unique_id in sources:
            source = sources[unique_id]
            read.add((source["schema"], source.get("identifier") or source["name"]))
        elif unique_id in nodes:
            node = nodes[unique_id]
            if node["config"].get("materialized") in ("view", "ephemeral"):
                todo += node["depends_on"]["nodes"]
            else:
                read.add((node["schema"], node.get("alias") or node["name"]))
    return sorted(read)


def _nodes(selection: str, materialized: tuple[str, ...]) -> list[dict]:
    """The manifest's nodes of the models and seeds the selection builds as `materialized`."""
    manifest = _manifest()
    folders = tuple(f + "/" for f in _folders(selection))
    return [node for node in manifest["nodes"].values()
            if node["resource_type"] in ("model", "seed") and node["config"].get("materialized") in materialized
            and node["original_file_path"].startswith(folders)]


def _inputs(con, name: str, selection: str) -> str:
    tables, upstream = SELECTION_INPUTS[name]
    return inputs_digest(con, DBT_DIR, _folders(selection), tables, upstream) + "/" + _versions()


def _versions() -> str:
    # (dbt-adapters holds the materializations' macros: how a view or a table is made)
    return "/".join(importlib.metadata.version(p) for p in ("dbt-core", "dbt-adapters", "dbt-duckdb", "duckdb"))


PROJECT_FOLDERS = ("models", "macros", "seeds", "tests")

# A build that leaves out the selection's views. `--indirect-selection empty`: their data tests
# still run, since the selection names them itself (each lives under one of its paths); with dbt's
# default (eager), an excluded model takes its tests with it.
WITHOUT_VIEWS = ["--exclude", "config.materialized:view", "--indirect-selection", "empty"]


@dataclasses.dataclass(frozen=True)
class _Views:
    """The views of a selection on DuckDB, and whether a build makes them again."""

    key: str  # their record in `state.dbt_builds`
    project: str  # the digest of the project files and versions they are made from
    read: list[tuple[str, str]]  # the tables they read
    unchanged: bool  # made from the same project over the same columns (`views_digest`), all still there

    @classmethod
    def plan(cls, con, name: str, selection: str, rebuild: bool) -> "_Views":
        """`rebuild`: made again whatever they were made from (a full or partial build)."""
        key = f"{name} views"
        # (the whole project: a view's SQL also holds the ephemeral models it reads, which may live
        # in another selection's folder, and the macros)
        project = inputs_digest(con, DBT_DIR, PROJECT_FOLDERS, ()) + "/" + _versions()
        read = _tables_read(selection)
        unchanged = not rebuild and up_to_date(con, key, views_digest(con, project, read), _relations(selection, ("view",)))
        if not unchanged:
            record_build(con, key, None)  # (until they are made)
        return cls(key, project, read, unchanged)

    def left_out(self, context: dg.AssetExecutionContext, what: str) -> list[str]:
        """The build's arguments that leave the views out, when they are unchanged."""
        if not self.unchanged:
            return []
        context.log.info(f"{what}: views made from the same project over the same columns, not made again")
        return WITHOUT_VIEWS

    def record(self, con) -> None:
        """After a build that made them: what they were made from (the tables as that build left them)."""
        if not self.unchanged:
            record_build(con, self.key, views_digest(con, self.project, self.read))

    def with_results(self, context: dg.AssetExecutionContext, selection: str, events) -> Iterator:
        """dbt's events of the build, and, when it left the views out, each view's asset as made
        before (`unchanged` in its metadata), as soon as every asset of this step it depends on has
        its result: Dagster skips the steps downstream of an asset that gets none, and wants a
        step's outputs in dependency order."""
        if not self.unchanged:
            yield from events
            return
        selected, deps = context.selected_asset_keys, context.assets_def.asset_deps
        translator = Translator()
        pending = {translator.get_asset_key(node) for node in _nodes(selection, ("view",))} & selected
        done = set()

        def ready():
            while now := sorted((k for k in pending if deps.get(k, set()) & selected <= done), key=str):
                for key in now:
                    pending.discard(key)
                    done.add(key)
                    yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_key(key),
                                    metadata={"unchanged": True})

        yield from ready()
        for event in events:
            yield event
            if isinstance(event, dg.Output):
                done.add(context.asset_key_for_output(event.output_name))
            elif isinstance(event, (dg.AssetMaterialization, dg.MaterializeResult)):
                done.add(event.asset_key)
            yield from ready()
        if pending:  # (an asset the views read got no result: dbt's build failed before it)
            raise RuntimeError(f"views left without a result: {sorted(map(str, pending))}")


def _not_rebuilt(context: dg.AssetExecutionContext, what: str):
    """The selection's assets as built before (its inputs are those of its last build): nothing
    is run, and each asset says so in its metadata (`unchanged`); their asset checks still run."""
    context.log.info(f"{what}: inputs unchanged since the last build, dbt not run")
    selected, deps = context.selected_asset_keys, context.assets_def.asset_deps
    order = graphlib.TopologicalSorter({key: deps.get(key, set()) & selected for key in selected})
    for key in order.static_order():  # (Dagster wants a multi-asset's outputs in dependency order)
        yield dg.MaterializeResult(asset_key=key, metadata={"unchanged": True})


def _on_spark(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: MeterhouseSettings,
              rebuild_from: str, full_refresh: bool, views: _Views, subset: bool = False):
    """The usage models built by dbt-spark, incrementally as on DuckDB: the source files of the
    arrival days from `rebuild_from` on go to Spark as Parquet, Spark replaces those days'
    partitions of its tables (kept between runs under `<warehouse>.spark/`), and those days come
    back into the warehouse (the other tables whole); the views are then made on DuckDB too, where
    the billing marts read them. A full build of every model starts Spark's folder afresh, and so
    does an incremental one that Spark stops because it no longer knows the tables it would add to
    (a Spark Connect server restarted since the last run, its catalog in memory).

    A `subset` of the models (materialized from Dagster's UI) is built whole over Spark's tables of
    the others, which stay as the last build left them, and only its own tables come back (the
    views on DuckDB are all made again)."""
    try:
        yield from _build_on_spark(context, dbt, settings, rebuild_from, full_refresh, subset)
    except DagsterDbtCliRuntimeError as error:
        if full_refresh or spark_exchange.TABLES_FORGOTTEN not in str(error):
            raise
        context.log.warning(f"usage models: {spark_exchange.TABLES_FORGOTTEN}, which it built before (a Spark "
                            "Connect server restarted since the last run?): no model was built; building them whole")
        rebuild_from, full_refresh = "0001-01-01", True
        yield from _build_on_spark(context, dbt, settings, rebuild_from, full_refresh, subset=False)
    relations = _relations(USAGE_MODELS, materialized=("table", "incremental", "seed"),
                           assets=context.selected_asset_keys if subset else None)
    with settings.connect() as con:
        spark_exchange.import_tables(con, settings.spark_dir, relations, None if full_refresh else rebuild_from)
    if views.unchanged:
        context.log.info("usage models: views on DuckDB made from the same project over the same columns, not made again")
        return
    views_folder = target_path("usage_models", settings)
    dbt.cli(["run", "--no-write-json", "--select", USAGE_MODELS,
             "--exclude", "config.materialized:table config.materialized:incremental"], target_path=views_folder).wait()
    keep_parse(views_folder, duckdb_parse_key(settings))


def _build_on_spark(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: MeterhouseSettings,
                    rebuild_from: str, full_refresh: bool, subset: bool = False):
    """dbt's build of the usage models on Spark, over the source files of the arrival days from
    `rebuild_from` on (everything, in a Spark folder started afresh, for a full build; for a full
    build of a `subset`, everything, over Spark's tables of the other models as they are)."""
    spark_dir = settings.spark_dir
    if full_refresh and not subset:
        with settings.connect() as con:
            forget_usage_state(con)
        spark_exchange.clear(spark_dir, keep_metastore=spark_server.keeps_metastore_for_full_build(spark_dir, context.log.info))
    if full_refresh:
        rebuild_from = "0001-01-01"
    os.environ["METERHOUSE_REBUILD_FROM"] = rebuild_from
    os.environ["METERHOUSE_SELECTION_ONLY"] = "true" if subset else ""  # (the on-run-start check's)
    with settings.connect() as con:
        exported = spark_exchange.export_sources(con, spark_dir, rebuild_from)
    with _spark_for_command(settings, context.log.info, last=True) as (target, where):
        context.log.info(f"usage models on {where}: "
                         + ("full build of a selection" if subset else "full build" if full_refresh
                            else f"arrival days from {rebuild_from}")
                         + f"; {len(exported)} source tables written as Parquet under {spark_dir / 'sources'}")
        args = [*dbt_args("build"), *(["--full-refresh"] if full_refresh else []), "--target", target]
        folder = spark_target_path("usage_models_spark", settings, target)
        yield from dbt.cli(args, context=context, target_path=folder).stream()
    keep_parse(folder, target)


@contextlib.contextmanager
def _spark_for_command(settings: MeterhouseSettings, log, last: bool = False) -> Iterator[tuple[str, str]]:
    """(dbt target, where Spark runs, in words) for a dbt command on Spark. dbt's Spark profile
    reads Spark's folder (`<warehouse>.spark/`), its master, the warehouse's name on Spark
    (`spark_exchange.spark_database`) and the URL of the run's Spark from
    the environment. On a local master the run's Spark Connect server serves the command (target
    `spark_served`; `spark_server.py`), started now if the run has none; `last`: the run's last
    command on Spark, after which it is stopped."""
    remote = os.environ.get("SPARK_REMOTE")
    os.environ["METERHOUSE_SPARK_DIR"] = str(settings.spark_dir)
    os.environ["METERHOUSE_SPARK_MASTER"] = settings.spark_master
    os.environ["METERHOUSE_SPARK_DATABASE"] = spark_exchange.spark_database(remote, settings.warehouse)
    target, where = spark_exchange.spark_target(remote, settings.spark_master)
    if not spark_server.shares_one_spark(remote, settings.spark_master):
        yield target, where
        return
    with spark_server.serving(settings.spark_dir, remote or settings.spark_master, log, last=last) as server:
        os.environ["METERHOUSE_SPARK_CONNECT_URL"] = server.url
        yield "spark_served", where


def run_on_spark(dbt: DbtCliResource, settings: MeterhouseSettings, statements: list[str], log) -> str:
    """Run Spark SQL statements, in order, on the Spark of `--engine spark` (the dbt target the
    usage models use, so the same session settings, master or Spark Connect): `dbt run-operation
    run_statements` (macros/spark_sources.sql). Where Spark ran, in words; `log` hears of the
    run's Spark started for it."""
    point_dbt_at(settings)
    with _spark_for_command(settings, log) as (target, where):
        args = ["run-operation", "run_statements", "--args", json.dumps({"statements": statements}),
                "--target", target, "--no-write-json"]
        folder = spark_target_path("landing_spark", settings, target)
        dbt.cli(args, target_path=folder).wait()
    keep_parse(folder, target)
    return where


@functools.cache
def usage_models():
    @dbt_assets(
        manifest=dbt_project().manifest_path,
        select=USAGE_MODELS,
        dagster_dbt_translator=Translator(),
        project=dbt_project(),
        name="usage_models",
        pool="duckdb_writer",
    )
    def _usage_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: MeterhouseSettings):
        """Staging, intermediate and usage marts: dedupe, attach to periods, match filters, aggregate.

        Incremental on arrival days: only the days loaded since the last build (and the days after
        them) are rebuilt, unless the catalog, the models or a billing period changed."""
        point_dbt_at(settings)
        with settings.connect() as con:
            ensure_raw_schema(con)
            remote = os.environ.get("SPARK_REMOTE")
            kept_by = spark_exchange.tables_kept_by(settings.engine, remote, settings.spark_dir,
                                                    spark_exchange.spark_database(remote, settings.warehouse))
            rebuild_from, full_refresh, fingerprint = plan_usage_rebuild(con, DBT_DIR, kept_by)
            forgotten = settings.engine == "spark" and spark_exchange.forgotten(settings.spark_dir, remote)
            full_refresh = full_refresh or forgotten
            if (settings.engine == "spark" and context.is_subset
                    and (forgotten or tables_kept_by_last_build(con) != kept_by)):
                raise dg.Failure(spark_exchange.SUBSET_WITHOUT_SPARK_TABLES.format(spark_dir=settings.spark_dir))
            digest = _inputs(con, "usage_models", USAGE_MODELS)
            unchanged = (not context.is_subset and not full_refresh and rebuild_from == NOTHING_TO_REBUILD
                         and up_to_date(con, "usage_models", digest, _relations(USAGE_MODELS)))
            if not unchanged:
                record_build(con, "usage_models", None)  # (until this build has succeeded)
                views = _Views.plan(con, "usage_models", USAGE_MODELS, rebuild=context.is_subset or full_refresh)
        if unchanged:
            yield from _not_rebuilt(context, "usage models")
            return
        if context.is_subset:  # some models only: rebuild them whole, and leave the state as it was
            rebuild_from, full_refresh = "0001-01-01", True
        if settings.engine == "spark":
            yield from _on_spark(context, dbt, settings, rebuild_from, full_refresh, views, context.is_subset)
        else:
            os.environ["METERHOUSE_REBUILD_FROM"] = rebuild_from
            context.log.info("usage models: full build" if full_refresh else f"usage models: arrival days from {rebuild_from}")
            args = (dbt_args("build") + DUCKDB_BUILD + (["--full-refresh"] if full_refresh else [])
                    + views.left_out(context, "usage models"))
            folder = target_path("usage_models", settings)
            yield from views.with_results(context, USAGE_MODELS, dbt.cli(args, context=context, target_path=folder).stream())
            keep_parse(folder, duckdb_parse_key(settings))
        with settings.connect() as con:
            if not context.is_subset:
                record_usage_state(con, fingerprint, kept_by)
                views.record(con)
            record_build(con, "usage_models", None if context.is_subset else digest)

    return _usage_models


@functools.cache
def billing_marts():
    @dbt_assets(
        manifest=dbt_project().manifest_path,
        select=BILLING_MARTS,
        dagster_dbt_translator=Translator(),
        project=dbt_project(),
        name="billing_marts",
        pool="duckdb_writer",
    )
    def _billing_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: MeterhouseSettings):
        """Analyst marts over the priced fees, invoices and wallet ledger."""
        point_dbt_at(settings)
        # Read only by the usage models' files; a value that changes every day would make dbt
        # parse those files again (partial parsing tracks each file's environment variables).
        os.environ["METERHOUSE_REBUILD_FROM"] = NOTHING_TO_REBUILD
        with settings.connect() as con:
            digest = _inputs(con, "billing_marts", BILLING_MARTS)
            unchanged = not context.is_subset and up_to_date(con, "billing_marts", digest, _relations(BILLING_MARTS))
            if not unchanged:
                record_build(con, "billing_marts", None)  # (until this build has succeeded)
                views = _Views.plan(con, "billing_marts", BILLING_MARTS, rebuild=context.is_subset)
        if unchanged:
            yield from _not_rebuilt(context, "billing marts")
            return
        folder = target_path("billing_marts", settings)
        args = dbt_args("build") + DUCKDB_BUILD + views.left_out(context, "billing marts")
        yield from views.with_results(context, BILLING_MARTS, dbt.cli(args, context=context, target_path=folder).stream())
        keep_parse(folder, duckdb_parse_key(settings))
        with settings.connect() as con:
            if not context.is_subset:
                views.record(con)
            record_build(con, "billing_marts", None if context.is_subset else digest)

    return _billing_marts


class LocalDbtCliResource(DbtCliResource):
    """dagster-dbt's resource for the dbt of this environment (`dbt_executable` below), without two
    costs that dagster-dbt pays before every invocation (twice per run):

    - it asks the executable for its version (`dbt --version`, about 2 s of dbt's import); this
      environment's dbt is the installed dbt-core, so its version is read from the package metadata;
    - it builds a dbt adapter in the Dagster process (loads the profile and the project, registers
      the adapter and parses dbt's macros: 0.7-1 s), which serves only `fetch_row_counts()` and
      `fetch_column_metadata()`. The assets here use neither; the invocation gets no adapter, as
      dagster-dbt gives it when that step fails.
    """

    @functools.cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return None

    def cli(self, *args, **kwargs):
        """dbt's command, in another process: the warehouse database a run holds open is closed
        first (`store/warehouse_file.py`), so that dbt can open the file."""
        warehouse_file.release()
        return super().cli(*args, **kwargs)


def dbt_resource(project: DbtProject | None = None) -> DbtCliResource:
    """dbt from this environment's own `bin/`, found without relying on PATH: `meterhouse-dbt`,
    which runs the command in the warm dbt server of the run where there is one (`warm_dbt.py`),
    else the installed `dbt`."""
    return LocalDbtCliResource(
        project_dir=project or dbt_project(),
        profiles_dir=str(DBT_DIR),
        dbt_executable=str(Path(sys.executable).parent / "meterhouse-dbt"),
    )


def dbt_cli_path() -> Path:
    return DBT_DIR
