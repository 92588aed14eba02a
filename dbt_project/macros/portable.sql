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

{# The sorted list of the text `column` over the rows where `condition` holds (an
   empty list when none does). #}
{% macro sorted_list(column, condition) -%}
    {{ return(adapter.dispatch('sorted_list')(column, condition)) }}
{%- endmacro %}

{% macro default__sorted_list(column, condition) -%}
    coalesce(list({{ column }} order by {{ column }}) filter (where {{ condition }}), []::varchar[])
{%- endmacro %}

{% macro spark__sorted_list(column, condition) -%}
    array_sort(collect_list(case when {{ condition }} then {{ column }} end))
{%- endmacro %}

{% macro spark__property_values(column, keys_column) -%}
    transform({{ keys_column }}, k -> {{ column }}[k])
{%- endmacro %}

{% macro spark__epoch_microseconds(expression) -%}
    unix_micros({{ expression }})
{%- endmacro %}

{% macro spark__iso_timestamp(expression) -%}
    date_format({{ expression }}, "yyyy-MM-dd'T'HH:mm:ss'Z'")
{%- endmacro %}

{# `alias.* exclude (columns)`: every column of `alias` (or of the relation) but `columns`. #}
{% macro star_except(columns, alias=none) -%}
    {{ return(adapter.dispatch('star_except')(columns, alias)) }}
{%- endmacro %}

{% macro default__star_except(columns, alias) -%}
    {{ alias ~ '.' if alias }}* exclude ({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__star_except(columns, alias) -%}
    {{ alias ~ '.' if alias }}* except ({{ columns | join(', ') }})
{%- endmacro %}

{# The text type, for casts (`null::{{ text_type() }}`). #}
{% macro text_type() -%}
    {{ return(adapter.dispatch('text_type')()) }}
{%- endmacro %}

{% macro default__text_type() -%}
    varchar
{%- endmacro %}

{% macro spark__text_type() -%}
    string
{%- endmacro %}

{# The timestamp of midnight `days` days after the date `date`. #}
{% macro days_after(date, days) -%}
    {{ return(adapter.dispatch('days_after')(date, days)) }}
{%- endmacro %}

{% macro default__days_after(date, days) -%}
    {{ date }} + to_days({{ days }})
{%- endmacro %}

{% macro spark__days_after(date, days) -%}
    cast(date_add({{ date }}, {{ days }}) as timestamp)
{%- endmacro %}

{# A struct of the columns `columns` (named as they are), compared field by field in order. #}
{% macro struct_of(columns) -%}
    {{ return(adapter.dispatch('struct_of')(columns)) }}
{%- endmacro %}

{% macro default__struct_of(columns) -%}
    { {%- for c in columns %} '{{ c }}': {{ c }}{{ ',' if not loop.last }}{% endfor %} }
{%- endmacro %}

{% macro spark__struct_of(columns) -%}
    named_struct({%- for c in columns %}'{{ c }}', {{ c }}{{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}

{# The value of `value` on the row where `key` (a struct or a value) is largest. #}
{% macro value_at_max(value, key) -%}
    {{ return(adapter.dispatch('value_at_max')(value, key)) }}
{%- endmacro %}

{% macro default__value_at_max(value, key) -%}
    arg_max({{ value }}, {{ key }})
{%- endmacro %}

{% macro spark__value_at_max(value, key) -%}
    max_by({{ value }}, {{ key }})
{%- endmacro %}

{# The 1-based position of `value` in the list `list`, 0 when absent. #}
{% macro list_index_of(list, value) -%}
    {{ return(adapter.dispatch('list_index_of')(list, value)) }}
{%- endmacro %}

{% macro default__list_index_of(list, value) -%}
    list_position({{ list }}, {{ value }})
{%- endmacro %}

{% macro spark__list_index_of(list, value) -%}
    array_position({{ list }}, {{ value }})
{%- endmacro %}

{# The item at 1-based position `index` of the list `list` (NULL when out of range or NULL). #}
{% macro list_item(list, index) -%}
    {{ return(adapter.dispatch('list_item')(list, index)) }}
{%- endmacro %}

{% macro default__list_item(list, index) -%}
    {{ list }}[{{ index }}]
{%- endmacro %}

{% macro spark__list_item(list, index) -%}
    try_element_at({{ list }}, cast({{ index }} as int))
{%- endmacro %}

{# A list of text as one text, the same bytes on every engine (it is hashed into ids): its items
   joined by `|`, a NULL item written `<null>` (as `row_hash` writes a NULL column). DuckDB's own
   `list::varchar` quotes some items and Spark's `array::string` none, so neither is used. #}
{% macro list_text(list) -%}
    {{ return(adapter.dispatch('list_text')(list)) }}
{%- endmacro %}

{% macro default__list_text(list) -%}
    array_to_string(list_transform({{ list }}, x -> coalesce(x, '<null>')), '|')
{%- endmacro %}

{% macro spark__list_text(list) -%}
    array_join({{ list }}, '|', '<null>')
{%- endmacro %}

{# A JSON object of `keys` -> `values` (two lists of text of the same length), without the keys
   whose value is NULL, in the order of `keys`. #}
{% macro json_object_of_lists(keys, values) -%}
    {{ return(adapter.dispatch('json_object_of_lists')(keys, values)) }}
{%- endmacro %}

{% macro default__json_object_of_lists(keys, values) -%}
    to_json(map_from_entries(list_filter(list_zip({{ keys }}, {{ values }}), x -> x[2] is not null)))::varchar
{%- endmacro %}

{% macro spark__json_object_of_lists(keys, values) -%}
    to_json(map_filter(map_from_arrays({{ keys }}, {{ values }}), (k, v) -> v is not null))
{%- endmacro %}

{% macro spark__property(column, key) -%}
    try_element_at({{ column }}, {{ key }})
{%- endmacro %}
