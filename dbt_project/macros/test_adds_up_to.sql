{#
  A generic test: a total of the model adds up to its parts in another model. `total` summed per key
  `by` (expressions of the model) equals `part` summed per key `parts_by` (expressions of `parts`,
  in the same order; `by` when not given) over the rows of `parts` kept by `parts_where`. A key
  present on one side only counts as 0 on the other. Fails with each key whose sums differ.
#}
{% test adds_up_to(model, total, by, parts, part, parts_by=none, parts_where='true') %}
{%- set parts_by = parts_by or by -%}
with totals as (
    select {% for k in by %}{{ k }} as key_{{ loop.index }}, {% endfor %}sum({{ total }}) as total
    from {{ model }}
    group by all
),
part_totals as (
    select {% for k in parts_by %}{{ k }} as key_{{ loop.index }}, {% endfor %}sum({{ part }}) as parts_total
    from {{ parts }}
    where {{ parts_where }}
    group by all
)
select *
from totals t
full join part_totals p using ({% for k in by %}key_{{ loop.index }}{{ ", " if not loop.last }}{% endfor %})
where coalesce(t.total, 0) <> coalesce(p.parts_total, 0)
{% endtest %}
