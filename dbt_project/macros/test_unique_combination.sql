{#
  A generic test: the combination of `columns` is a primary key (no dbt package needed offline).
  Rows are grouped on one 64-bit hash of the columns first, and on the columns themselves only
  where a hash repeats: the same duplicates as grouping every row on the columns, found in about
  two thirds of the time on the event tables (docs/performance.md). A hash collision between
  distinct keys costs a closer look, never a false failure.
#}
{% test unique_combination(model, columns) %}
{%- set key = columns | join(', ') -%}
with repeated_hashes as (
    select {{ row_hash(columns) }} as key_hash
    from {{ model }}
    group by 1
    having count(*) > 1
)
select {{ key }}, count(*) as n
from {{ model }}
where {{ row_hash(columns) }} in (select key_hash from repeated_hashes)
group by {{ key }}
having count(*) > 1
{% endtest %}
