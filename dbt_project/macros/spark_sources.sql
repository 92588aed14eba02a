{#
  on-run-start on Spark: the session's settings dbt-spark cannot take as server-side parameters
  (it forces ANSI mode off, which turns an overflow into NULL), and the sources as tables over the
  Parquet files the pipeline wrote under `<METERHOUSE_SPARK_DIR>/sources/<schema>/<table>/`,
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
    {%- set schemas = [] -%}
    {%- set usage_schemas = ['raw', 'catalog', 'calendar'] -%}
    {%- for source in graph.sources.values() if source.schema in usage_schemas and source.schema not in schemas -%}
        {%- do schemas.append(source.schema) -%}
    {%- endfor -%}
    {%- for schema in schemas %}
    {%- do run_query('create database if not exists ' ~ schema) -%}
    {%- endfor -%}
    {%- for source in graph.sources.values() if source.schema in usage_schemas -%}
        {%- do run_query('drop table if exists ' ~ source.schema ~ '.' ~ source.name) -%}
        {%- do run_query('create table ' ~ source.schema ~ '.' ~ source.name ~ " using parquet location '" ~ root ~ '/' ~ source.schema ~ '/' ~ source.name ~ "'") -%}
    {%- endfor -%}
    {%- endif -%}
    set spark.sql.ansi.enabled = true
{%- endmacro %}
