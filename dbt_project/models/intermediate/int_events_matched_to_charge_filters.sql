-- Every first-arrival event, checked (`int_events_validated`): accepted events matched to the
-- charges of their plan and to the most specific charge filter, rejected events once, with their
-- reason and no charge. The one event-level table after deduplication: each event is written once.
-- A filter matches when, for each of its keys, the event's property is one of its values; among
-- matching filters the one with more keys wins, then the one with fewer values, then the first
-- declared. An event that matches no filter stays in the charge's default bucket (null filter).
-- An event's filter depends only on its charge and its dimensions (the values of the filter keys,
-- `dimension_values`), so filters are matched once per distinct (charge, dimensions), not once per
-- event, and the events take their match by a join on those few combinations.
-- Incremental on arrival days: each event is checked and matched on its own.
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_rebuilt_days() }}") }}

with checked as {{ inline_cte() }} (
    -- (the days being rebuilt only: the ephemeral model filters on them itself)
    select * from {{ ref('int_events_validated') }}
),

accepted as {{ inline_cte() }} (
    select * from checked where rejection_reason is null
),

charges as (select * from {{ ref('stg_catalog__charges') }}),
filters as (select * from {{ ref('stg_catalog__charge_filters') }}),
filter_values as (select * from {{ ref('stg_catalog__charge_filter_values') }}),
filter_keys as (select filter_keys from {{ ref('stg_catalog__filter_keys') }}),

-- Every accepted event has at least one charge (else it is rejected as metric_not_in_plan); the
-- row of its first charge is the one that counts the event itself (`is_first_charge`).
first_charges as (
    select plan_id, billable_metric_id, min(charge_id) as first_charge_id from charges group by plan_id, billable_metric_id
),

event_charges as {{ inline_cte() }} (
    select a.*, c.charge_id, c.charge_id = f.first_charge_id as is_first_charge
    from accepted a
    join charges c on c.plan_id = a.plan_id and c.billable_metric_id = a.billable_metric_id
    join first_charges f on f.plan_id = a.plan_id and f.billable_metric_id = a.billable_metric_id
),

signatures as (
    select distinct charge_id, dimension_values
    from event_charges
    where charge_id in (select charge_id from filter_values)
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
),

matched as (
    select ec.* exclude (charge_id, is_first_charge), ec.charge_id, m.charge_filter_id, ec.is_first_charge
    from event_charges ec
    left join most_specific m
        on m.charge_id = ec.charge_id and m.dimension_values is not distinct from ec.dimension_values
),

rejected as (
    select *, null::varchar as charge_id, null::varchar as charge_filter_id, true as is_first_charge
    from checked
    where rejection_reason is not null
),

final as (
    -- (the same columns in the same order: the event's, then charge, filter, is_first_charge)
    select * from matched
    union all
    select * from rejected
)

select * from final
