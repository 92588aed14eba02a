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

{# Pre-hook of every incremental model: drop the days about to be inserted again. #}
{% macro delete_rebuilt_days() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where arrival_date >= {{ rebuild_from() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
