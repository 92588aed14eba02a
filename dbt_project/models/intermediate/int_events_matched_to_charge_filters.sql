-- Accepted events matched to the charges of their plan and to the most specific charge filter.
-- A filter matches when, for each of its keys, the event's property is one of its values; among
-- matching filters the one with more keys wins, then the one with fewer values, then the first
-- declared. An event that matches no filter stays in the charge's default bucket (null filter).
-- An event's filter depends only on its charge and its dimensions (the values of the filter keys,
-- `dimension_values`), so filters are matched once per distinct (charge, dimensions), not once per
-- event, and the events take their match by a join on those few combinations.
-- Incremental on arrival days: each event is matched on its own. Narrow, like its input.
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_rebuilt_days() }}") }}

with accepted as {{ inline_cte() }} (
    select * from {{ ref('int_events_validated') }}
    where rejection_reason is null and {{ in_rebuilt_days() }}
),

charges as (select * from {{ ref('stg_catalog__charges') }}),
filters as (select * from {{ ref('stg_catalog__charge_filters') }}),
filter_values as (select * from {{ ref('stg_catalog__charge_filter_values') }}),
filter_keys as (select filter_keys from {{ ref('stg_catalog__filter_keys') }}),

event_charges as {{ inline_cte() }} (
    select a.*, c.charge_id, c.is_pay_in_advance or c.charge_model = 'percentage' as is_priced_per_event
    from accepted a
    join charges c on c.plan_id = a.plan_id and c.billable_metric_id = a.billable_metric_id
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

final as (
    select
        ec.arrival_date, ec.source_file, ec.line_number, ec.item_index,
        -- shown by fct_charge_events only: not written for the other events
        case when ec.is_priced_per_event then ec.transaction_id end as transaction_id,
        ec.external_subscription_id, ec.subscription_id, ec.customer_id, ec.external_customer_id,
        ec.plan_id, ec.billing_period_id, ec.invoice_finalized_on, ec.billable_metric_code,
        ec.billable_metric_id, ec.aggregation_type, ec.is_recurring, ec.field_value, ec.units,
        ec.event_at, ec.dimension_values, ec.charge_id, m.charge_filter_id
    from event_charges ec
    left join most_specific m
        on m.charge_id = ec.charge_id and m.dimension_values is not distinct from ec.dimension_values
)

select * from final
