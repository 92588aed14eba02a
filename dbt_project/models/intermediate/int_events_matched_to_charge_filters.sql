-- Accepted events matched to the charges of their plan and to the most specific charge filter.
-- A filter matches when, for each of its keys, the event's property is one of its values; among
-- matching filters the one with more keys wins, then the one with fewer values, then the first
-- declared. An event that matches no filter stays in the charge's default bucket (null filter).
with accepted as (
    select * from {{ ref('int_events_validated') }}
    where rejection_reason is null
),

charges as (select * from {{ ref('stg_catalog__charges') }}),
filters as (select * from {{ ref('stg_catalog__charge_filters') }}),
filter_values as (select * from {{ ref('stg_catalog__charge_filter_values') }}),

event_charges as (
    select a.*, c.charge_id
    from accepted a
    join charges c on c.plan_id = a.plan_id and c.billable_metric_id = a.billable_metric_id
),

matching_filters as (
    select ec.event_record_id, ec.charge_id, f.charge_filter_id, f.key_count, f.value_count, f.filter_index
    from event_charges ec
    join filter_values v on v.charge_id = ec.charge_id and ec.properties[v.filter_key] = v.filter_value
    join filters f on f.charge_filter_id = v.charge_filter_id
    group by all
    having count(distinct v.filter_key) = f.key_count
),

most_specific as (
    select * from matching_filters
    qualify row_number() over (
        partition by event_record_id, charge_id
        order by key_count desc, value_count asc, filter_index asc
    ) = 1
),

final as (
    select ec.*, m.charge_filter_id
    from event_charges ec
    left join most_specific m using (event_record_id, charge_id)
)

select * from final
