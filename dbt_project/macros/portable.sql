{#
  The few expressions whose spelling differs between engines, dispatched per adapter so that the
  models can move to Spark or Trino by adding `spark__`/`trino__` versions (see docs/performance.md).
#}

{# Text -> DECIMAL(38, 12), NULL when it is not a number. #}
{% macro to_decimal(expression) -%}
    {{ return(adapter.dispatch('to_decimal')(expression)) }}
{%- endmacro %}

{% macro default__to_decimal(expression) -%}
    try_cast({{ expression }} as decimal(38, 12))
{%- endmacro %}

{# DuckDB parses VARCHAR -> DECIMAL(38, x) a hundred times slower than -> BIGINT: whole numbers of
   up to 18 digits (token counts) and short fractions take the cheap cast, with the same result. #}
{% macro duckdb__to_decimal(expression) -%}
    case
        when regexp_full_match({{ expression }}, '-?[0-9]{1,18}')
            then try_cast({{ expression }} as bigint)::decimal(38, 12)
        when regexp_full_match({{ expression }}, '-?[0-9]{1,12}\.[0-9]{1,6}')
            then try_cast({{ expression }} as decimal(18, 6))::decimal(38, 12)
        else try_cast({{ expression }} as decimal(38, 12))
    end
{%- endmacro %}

{# The value of key `key` (a string literal) of the MAP(VARCHAR, VARCHAR) column `properties`. #}
{% macro property(column, key) -%}
    {{ return(adapter.dispatch('property')(column, key)) }}
{%- endmacro %}

{% macro default__property(column, key) -%}
    {{ column }}[{{ key }}]
{%- endmacro %}

{# Microseconds since the Unix epoch of a timestamp. #}
{% macro epoch_microseconds(expression) -%}
    {{ return(adapter.dispatch('epoch_microseconds')(expression)) }}
{%- endmacro %}

{% macro default__epoch_microseconds(expression) -%}
    epoch_us({{ expression }})
{%- endmacro %}

{# The timestamp as ISO-8601 text with a Z (UTC), to the second. #}
{% macro iso_timestamp(expression) -%}
    {{ return(adapter.dispatch('iso_timestamp')(expression)) }}
{%- endmacro %}

{% macro default__iso_timestamp(expression) -%}
    strftime({{ expression }}, '%Y-%m-%dT%H:%M:%SZ')
{%- endmacro %}

{# The values of `keys_column` (a list of keys) in the map `column`, in that order (NULL: missing). #}
{% macro property_values(column, keys_column) -%}
    {{ return(adapter.dispatch('property_values')(column, keys_column)) }}
{%- endmacro %}

{% macro default__property_values(column, keys_column) -%}
    list_transform({{ keys_column }}, k -> {{ column }}[k])
{%- endmacro %}

{# `with name as {{ inline_cte() }} (...)`: a CTE read twice is computed where it is read, not
   materialized. DuckDB materializes such CTEs by default, which over millions of wide event rows
   means holding them in memory (and spilling). #}
{% macro inline_cte() -%}
    {{ return(adapter.dispatch('inline_cte')()) }}
{%- endmacro %}

{% macro default__inline_cte() -%}
{%- endmacro %}

{% macro duckdb__inline_cte() -%}
    not materialized
{%- endmacro %}

{# A hash of the values of `columns` (equal values, equal hashes; NULLs included). #}
{% macro row_hash(columns) -%}
    {{ return(adapter.dispatch('row_hash')(columns)) }}
{%- endmacro %}

{% macro default__row_hash(columns) -%}
    {%- set parts = [] -%}
    {%- for column in columns -%}
        {%- do parts.append("coalesce(cast(" ~ column ~ " as " ~ dbt.type_string() ~ "), '<null>')") -%}
        {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}

{% macro duckdb__row_hash(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}
