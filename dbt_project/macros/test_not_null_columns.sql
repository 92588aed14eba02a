{#
  A generic test: none of `columns` holds a null (dbt's `not_null` on each, in one query and one
  node, for a model whose columns share the test's `where`). Fails with each column that holds
  nulls and how many rows do.
#}
{% test not_null_columns(model, columns) %}
with null_counts as (
    select
    {%- for column in columns %}
        sum(case when {{ column }} is null then 1 else 0 end) as nulls_{{ loop.index }}{{ "," if not loop.last }}
    {%- endfor %}
    from {{ model }}
)
{% for column in columns -%}
select '{{ column }}' as column_name, nulls_{{ loop.index }} as n_records from null_counts where nulls_{{ loop.index }} > 0
{% if not loop.last %}union all
{% endif %}
{%- endfor %}
{% endtest %}
