-- Accepted events matched to the charges of their plan and to the most specific charge filter.
-- A filter matches when, for each of its keys, the event's property is one of its values; among
-- matching filters the one with more keys wins, then the one with fewer values, then the first
-- declared. An event that matches no filter stays in the charge's default bucket (null filter).
-- Incremental on arrival days: each event is matched on its own. (As a view it would cost less in
-- a full build, but the distinct signatures are computed before the readers' arrival-day filter
-- applies, so a daily run would match the whole history again.)
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_rebuilt_days() }}") }}

with accepted as (
    select * from {{ ref('int_events_validated') }}
    where rejection_reason is null and {{ in_rebuilt_days() }}
),

charges as (select * from {{ ref('stg_catalog__charges') }}),
filters as (select * from {{ ref('stg_catalog__charge_filters') }}),
filter_values as (select * from {{ ref('stg_catalog__charge_filter_values') }}),

-- The keys the filters of each charge look at: an event's values of those keys (its signature)
-- decide its filter, so filters are matched once per distinct signature, not once per event.
charge_keys as (
    select charge_id, list(distinct filter_key order by filter_key) as filter_keys
    from filter_values
    group by charge_id
),

event_charges as {{ inline_cte() }} (
    select a.*, c.charge_id,
        {{ property_values('a.properties', 'k.filter_keys') }} as filter_signature
    from accepted a
    join charges c on c.plan_id = a.plan_id and c.billable_metric_id = a.billable_metric_id
    left join charge_keys k on k.charge_id = c.charge_id
),

signatures as (
    select distinct ec.charge_id, ec.filter_signature, k.filter_keys
    from event_charges ec
    join charge_keys k on k.charge_id = ec.charge_id
),

signature_values as (
    select charge_id, filter_signature, unnest(filter_keys) as filter_key, unnest(filter_signature) as filter_value
    from signatures
),

matching_filters as (
    select s.charge_id, s.filter_signature, f.charge_filter_id, f.key_count, f.value_count, f.filter_index
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
        partition by charge_id, filter_signature
        order by key_count desc, value_count asc, filter_index asc
    ) = 1
),

final as (
    select
        ec.event_record_id, ec.arrival_date, ec.source_file, ec.line_number, ec.transaction_id,
        ec.external_subscription_id, ec.subscription_id, ec.customer_id, ec.external_customer_id,
        ec.plan_id, ec.billing_period_id, ec.invoice_finalized_on, ec.billable_metric_code,
        ec.billable_metric_id, ec.aggregation_type, ec.is_recurring, ec.field_value, ec.units,
        ec.event_at, ec.properties, ec.charge_id, m.charge_filter_id
    from event_charges ec
    left join most_specific m
        on m.charge_id = ec.charge_id and m.filter_signature is not distinct from ec.filter_signature
)

select * from final
