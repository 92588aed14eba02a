{#
  on-run-start: drop the tables of models that no longer exist, which dbt leaves in a warehouse
  built by an earlier version (they would hold a stale copy of every event, and mislead an analyst).
  Issue #21 replaced the event-level int_events_matched_to_charge_filters (and its ephemeral input,
  once a table) and int_charge_filters_by_dimensions with the one pass, int_events_checked_daily.
#}
{% macro drop_retired_models() -%}
    {%- set retired = ['int_events_matched_to_charge_filters', 'int_events_validated', 'int_charge_filters_by_dimensions'] -%}
    {#- (one statement each: Spark runs one statement a call) -#}
    {%- if execute -%}
    {%- for name in retired -%}
    {%- do run_query('drop table if exists ' ~ generate_schema_name('intermediate', none) ~ '.' ~ name) -%}
    {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}
