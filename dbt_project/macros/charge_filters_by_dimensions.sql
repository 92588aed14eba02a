{#
  The most specific filter of each charge for each combination of dimensions (the values of the
  filter keys, `dimension_values`, in the order of `stg_catalog__filter_keys`): the rows of
  `combinations` (a CTE or relation of charge_id, dimension_values) with the filter they fall in.
  A filter matches when, for each of its keys, the dimension is one of its values; among matching
  filters the one with more keys wins, then the one with fewer values, then the first declared. A
  combination that matches no filter has no row (the events stay in the charge's default bucket).
  An event's filter depends only on its charge and its dimensions: matched once per combination,
  never once per event.
#}
{% macro charge_filters_by_dimensions(combinations) -%}
    with filters as (select * from {{ ref('stg_catalog__charge_filters') }}),
    filter_values as (select * from {{ ref('stg_catalog__charge_filter_values') }}),
    filter_keys as (select filter_keys from {{ ref('stg_catalog__filter_keys') }}),

    signature_values as (
        {{ filter_signature_values(combinations) }}
    ),

    matching_filters as (
        select s.charge_id, s.dimension_values, f.charge_filter_id, f.key_count, f.value_count, f.filter_index
        from signature_values s
        join filter_values v
            on v.charge_id = s.charge_id and v.filter_key = s.filter_key and v.filter_value = s.filter_value
        join filters f on f.charge_filter_id = v.charge_filter_id
        group by all
        having count(distinct v.filter_key) = f.key_count
    )

    select charge_id, dimension_values, charge_filter_id from matching_filters
    qualify row_number() over (
        partition by charge_id, dimension_values
        order by key_count desc, value_count asc, filter_index asc
    ) = 1
{%- endmacro %}


{# Each combination of `combinations` (for charges with filters) with each filter key and its value
   in the combination: one row per key (the two lists zipped). #}
{% macro filter_signature_values(combinations) -%}
    {{ return(adapter.dispatch('filter_signature_values')(combinations)) }}
{%- endmacro %}

{% macro default__filter_signature_values(combinations) -%}
        select s.charge_id, s.dimension_values,
            unnest(k.filter_keys) as filter_key, unnest(s.dimension_values) as filter_value
        from {{ combinations }} s
        cross join filter_keys k
        where s.charge_id in (select charge_id from filter_values)
{%- endmacro %}

{% macro spark__filter_signature_values(combinations) -%}
        select s.charge_id, s.dimension_values, z.filter_key, z.filter_value
        from {{ combinations }} s
        cross join filter_keys k
        lateral view inline(arrays_zip(k.filter_keys, s.dimension_values)) z as filter_key, filter_value
        where s.charge_id in (select charge_id from filter_values)
{%- endmacro %}
