{#
  on-run-start on Spark: the session's settings dbt-spark cannot take as server-side parameters
  (it forces ANSI mode off, which turns an overflow into NULL), and the sources as tables over the
  Parquet files the pipeline wrote under `<METERHOUSE_SPARK_DIR>/sources/<layer>/<table>/`,
  registered again at each run (their files are replaced between runs): those of the usage models
  (raw, catalog, calendar; the billing marts stay on DuckDB). Nothing on other engines.
#}
{% macro register_sources() -%}
    {{ return(adapter.dispatch('register_sources')()) }}
{%- endmacro %}

{% macro default__register_sources() -%}
    select 1
{%- endmacro %}

{% macro spark__register_sources() -%}
    {%- if execute -%}
    {%- set root = env_var('METERHOUSE_SPARK_DIR') ~ '/sources' -%}
    {%- set layers = ['raw', 'catalog', 'calendar'] -%}
    {#- (raw.events is Spark's own typed raw layer: a folder per arrival day, `arrival_date=YYYY-MM-DD/`,
        its partitions registered from the folders; spark_exchange.export_sources) -#}
    {%- set by_day_folders = ['raw.events'] -%}
    {%- set sources = graph.sources.values() | selectattr('source_name', 'in', layers) | list -%}
    {#- (each layer's database is `<target.schema>_<layer>`, its files under `<root>/<layer>/`) -#}
    {%- for source in sources | unique(attribute='schema') -%}
        {%- do run_query('create database if not exists ' ~ source.schema ~ " location '" ~ root ~ '/' ~ source.source_name ~ "'") -%}
    {%- endfor -%}
    {%- for source in sources -%}
        {%- set name = source.schema ~ '.' ~ source.name -%}
        {%- do run_query('drop table if exists ' ~ name) -%}
        {%- do run_query('create table ' ~ name ~ " using parquet location '" ~ root ~ '/' ~ source.source_name ~ '/' ~ source.name ~ "'") -%}
        {%- if source.source_name ~ '.' ~ source.name in by_day_folders -%}
            {%- do run_query('msck repair table ' ~ name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ assert_spark_knows_incremental_models() }}
    {{ assert_spark_knows_what_the_selection_reads() }}
    {%- endif -%}
    set spark.sql.ansi.enabled = true
{%- endmacro %}

{#
  An incremental build adds to the tables Spark built before. A Spark Connect server restarted
  since (its catalog is in memory unless it keeps a metastore: Spark's default) no longer knows
  them while their files are still under `<METERHOUSE_SPARK_DIR>/tables/`: dbt would try to create
  them again and Spark refuse the location. An error raised while dbt renders the hook ends the
  command before any model, saying so: `meterhouse run` then builds the usage models whole
  (`defs/dbt.py`, `_on_spark`, which knows the error by its first words,
  `spark_exchange.TABLES_FORGOTTEN`). The same holds when a table's files are gone too: the run
  then builds everything whole, not that model alone. (After a full build that did not finish, the
  next build is a full one anyway: `usage_state.forget_usage_state`.)
#}
{% macro assert_spark_knows_incremental_models() -%}
    {%- if env_var('METERHOUSE_REBUILD_FROM', '0001-01-01') != '0001-01-01' and not flags.FULL_REFRESH -%}
        {%- set unknown = [] -%}
        {%- for node in graph.nodes.values() if node.unique_id in selected_resources
                                              and node.config.materialized == 'incremental' -%}
            {%- if adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) is none -%}
                {%- do unknown.append(node.schema ~ '.' ~ node.alias) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if unknown -%}
            {%- do exceptions.raise_compiler_error(
                "Spark no longer knows this warehouse's tables (" ~ unknown | sort | join(', ') ~ " missing from its "
                ~ "catalog) although an earlier build made them, under " ~ env_var('METERHOUSE_SPARK_DIR') ~ "/tables "
                ~ "(a Spark Connect server restarted since, whose catalog is kept in memory? a build that did not "
                ~ "finish?). No model was built; `meterhouse run` builds them whole, a build by hand needs "
                ~ "--full-refresh after deleting " ~ env_var('METERHOUSE_SPARK_DIR') ~ "/tables.") -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#
  A selection of the usage models (materialized from Dagster's UI, METERHOUSE_SELECTION_ONLY) is
  built over Spark's tables of the models it reads and does not build, and replaces its own tables.
  A Spark Connect server restarted since the last build (its catalog in memory) no longer knows
  them, though their files are still there: the command ends before any model, naming them, rather
  than on the first model that reads one or is created where its files are. (No usage model reads
  an ephemeral one; one that did would need its own parents checked here.)
#}
{% macro assert_spark_knows_what_the_selection_reads() -%}
    {%- if env_var('METERHOUSE_SELECTION_ONLY', '') -%}
        {%- set needed = [] -%}
        {%- for node in graph.nodes.values() if node.unique_id in selected_resources
                                              and node.resource_type in ('model', 'seed') -%}
            {%- if node.config.materialized in ('table', 'incremental', 'seed') -%}
                {%- do needed.append(node) -%}
            {%- endif -%}
            {%- for parent_id in node.depends_on.nodes if parent_id in graph.nodes and parent_id not in selected_resources -%}
                {%- if graph.nodes[parent_id].config.materialized != 'ephemeral' -%}
                    {%- do needed.append(graph.nodes[parent_id]) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- set missing = [] -%}
        {%- for node in needed | unique(attribute='unique_id') -%}
            {%- if adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) is none -%}
                {%- do missing.append(node.schema ~ '.' ~ node.alias) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if missing -%}
            {%- do exceptions.raise_compiler_error(
                "Spark does not know the tables this selection reads or replaces (" ~ missing | sort | join(', ')
                ~ " missing from its catalog; a Spark Connect server restarted since the last build?). No model was "
                ~ "built: materialize every usage model (`meterhouse run` does), then the selection if it is still needed.") -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#
  `dbt run-operation run_statements --args '{statements: [...]}'`: run Spark SQL statements in order
  on the target's Spark (the reading of the landing files, `ingest/spark_reader.py`, rendered in
  Python from the quarantine rules that DuckDB's loader renders too).
#}
{% macro run_statements(statements) -%}
    {%- for statement in statements -%}
        {%- do run_query(statement) -%}
    {%- endfor -%}
{%- endmacro %}
