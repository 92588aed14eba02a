-- The most specific filter of each charge for each combination of dimensions (the values of the
-- filter keys, `dimension_values`) seen in the arrival days being rebuilt: an event's filter
-- depends only on its charge and its dimensions, so filters are matched once per distinct
-- combination, not once per event. A filter matches when, for each of its keys, the dimension is
-- one of its values; among matching filters the one with more keys wins, then the one with fewer
-- values, then the first declared. A combination that matches no filter has no row (the event
-- stays in the charge's default bucket).
-- Rebuilt whole at every run (a few rows), for the days `int_events_matched_to_charge_filters` rebuilds.
{{ config(materialized='table') }}

with filters as (select * from {{ ref('stg_catalog__charge_filters') }}),
filter_values as (select * from {{ ref('stg_catalog__charge_filter_values') }}),
filter_keys as (select filter_keys from {{ ref('stg_catalog__filter_keys') }}),

-- The dimensions of the rebuilt days, read from the loaded events (duplicates included: a few
-- signatures too many cost nothing) for each charge that has filters.
dimensions as (
    select distinct {{ property_values('e.properties', 'k.filter_keys') }} as dimension_values
    from {{ ref('stg_raw__events') }} e
    cross join filter_keys k
    where e.load_error is null and e.arrival_date >= {{ rebuild_from() }}
),

signatures as (
    select c.charge_id, d.dimension_values
    from dimensions d
    cross join (select distinct charge_id from filter_values) c
),

signature_values as (
    select s.charge_id, s.dimension_values,
        unnest(k.filter_keys) as filter_key, unnest(s.dimension_values) as filter_value
    from signatures s
    cross join filter_keys k
),

matching_filters as (
    select s.charge_id, s.dimension_values, f.charge_filter_id, f.key_count, f.value_count, f.filter_index
    from signature_values s
    join filter_values v
        on v.charge_id = s.charge_id and v.filter_key = s.filter_key and v.filter_value = s.filter_value
    join filters f on f.charge_filter_id = v.charge_filter_id
    group by all
    having count(distinct v.filter_key) = f.key_count
),

most_specific as (
    select * from matching_filters
    qualify row_number() over (
        partition by charge_id, dimension_values
        order by key_count desc, value_count asc, filter_index asc
    ) = 1
)

select charge_id, dimension_values, charge_filter_id from most_specific
