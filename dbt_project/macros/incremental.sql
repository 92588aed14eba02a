{#
  Incremental models keyed on arrival partitions.

  The Dagster asset `usage_models` compares what was loaded (`raw.day_loads`) with what the models
  last saw, and passes the first arrival date to rebuild in METERHOUSE_REBUILD_FROM (with
  `--full-refresh` when the catalog, a billing period or the models changed). Each incremental
  model deletes its rows of the days from that date on and inserts them again, reading only those
  days of its inputs (plus, where a day depends on earlier ones, the rows of earlier days it needs:
  first arrivals for deduplication, values already seen, charge order so far).
  Without the variable (a `dbt build` by hand), everything is rebuilt.
#}
{#
  The variable is read only when dbt executes (`execute`), never while it parses: dbt's partial
  parsing re-parses every file that read an environment variable whose value changed, and this one
  changes every day.
#}
{% macro rebuild_from() -%}
    {%- if execute -%}
        cast('{{ env_var("METERHOUSE_REBUILD_FROM", "0001-01-01") }}' as date)
    {%- else -%}
        cast('0001-01-01' as date)
    {%- endif -%}
{%- endmacro %}

{#
  dbt's hook for a data test's `where` config (see dbt's `where` reference, "Custom logic"): the
  event-level tests filter on `arrival_date >= __rebuild_from__`, filled in here at compile time,
  so that the schema files read no environment variable while they are parsed.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set where = where | replace('__rebuild_from__', rebuild_from()) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{# `where` clause of the rows an incremental run recomputes (true in a full build). #}
{% macro in_rebuilt_days(column='arrival_date') -%}
    {%- if is_incremental() -%} {{ column }} >= {{ rebuild_from() }} {%- else -%} true {%- endif -%}
{%- endmacro %}

{# `where` clause of the rows an incremental run keeps (false in a full build: there are none). #}
{% macro in_kept_days(column='arrival_date') -%}
    {%- if is_incremental() -%} {{ column }} < {{ rebuild_from() }} {%- else -%} false {%- endif -%}
{%- endmacro %}

{#
  The config of every incremental model, per engine (`config(materialized='incremental', **by_arrival_day())`):
  - on DuckDB, `append` after the pre-hook has deleted the days rebuilt;
  - on Spark, `insert_overwrite` of a table partitioned by `arrival_date` (Parquet files cannot
    delete rows): each rebuilt day's partition is replaced whole. The pre-hook drops the partitions
    of the rebuilt days first, so that a day left with no rows (a changed file) loses its old ones.
    Spark moves a partition column last in its table; the post-hook writes the model's columns, in
    their order and types, as an empty Parquet file under `<METERHOUSE_SPARK_DIR>/schemas/`, from
    which the pipeline reads the table back in the model's order (spark_exchange.import_tables).
#}
{% macro by_arrival_day() -%}
    {{ return(adapter.dispatch('by_arrival_day')()) }}
{%- endmacro %}

{% macro default__by_arrival_day() -%}
    {{ return({'incremental_strategy': 'append', 'pre_hook': '{{ delete_rebuilt_days() }}'}) }}
{%- endmacro %}

{% macro spark__by_arrival_day() -%}
    {{ return({'incremental_strategy': 'insert_overwrite', 'partition_by': ['arrival_date'],
               'pre_hook': '{{ delete_rebuilt_days() }}', 'post_hook': '{{ write_model_schema() }}'}) }}
{%- endmacro %}

{# Pre-hook of every incremental model: drop the days about to be inserted again. #}
{% macro delete_rebuilt_days() -%}
    {{ return(adapter.dispatch('delete_rebuilt_days')()) }}
{%- endmacro %}

{% macro default__delete_rebuilt_days() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where arrival_date >= {{ rebuild_from() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# (Spark's DROP PARTITION takes equalities only: the table's partitions are listed, and those
   from the first rebuilt day on are named one by one; ISO dates compare as text.) #}
{% macro spark__delete_rebuilt_days() -%}
    {%- set days = [] -%}
    {%- if is_incremental() and execute -%}
        {%- set first = env_var("METERHOUSE_REBUILD_FROM", "0001-01-01") -%}
        {%- for row in run_query('show partitions ' ~ this).rows -%}
            {%- set day = row[0].split('=')[1] -%}
            {%- if day >= first -%}{%- do days.append(day) -%}{%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if days -%}
        alter table {{ this }} drop if exists
        {%- for day in days %} partition (arrival_date = date'{{ day }}'){{ ',' if not loop.last }}{% endfor %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# Post-hook on Spark: the model's columns, in order, as an empty Parquet file (see by_arrival_day). #}
{% macro write_model_schema() -%}
    {%- if execute -%}
        insert overwrite directory '{{ env_var("METERHOUSE_SPARK_DIR") }}/schemas/{{ spark_layer(this.schema) }}.{{ this.identifier }}'
        using parquet
        select * from ({{ model.compiled_code }}) limit 0
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
