{#
  A generic test: `column_name` is the model's primary key, never null and never repeated (dbt's
  `unique` and `not_null` together, in one query and one node: each dbt node costs about 25 ms of
  dbt and Dagster around its query, docs/performance.md). Fails with each null or repeated key and
  how many rows hold it.
#}
{% test primary_key(model, column_name) %}
select {{ column_name }} as key_value, count(*) as n_records
from {{ model }}
group by {{ column_name }}
having {{ column_name }} is null or count(*) > 1
{% endtest %}
