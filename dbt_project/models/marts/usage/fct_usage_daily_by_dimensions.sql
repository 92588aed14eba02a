-- The pricing input of the buckets priced per group (`pricing_group_keys` on a charge or a charge
-- filter): fct_usage_daily's partial aggregates, per combination of dimensions as well
-- (`dimensions_json`: the events' values of the catalog's filter and group keys), from which pricing
-- takes each row's group (billing/grouping.py). Only those buckets have rows here; unique counts are
-- never grouped (refused by the catalog check), so `units` is the one pass's additive part as it is.
-- Incremental on arrival days: a row depends on its own day only.
{{ config(materialized='incremental', **by_arrival_day()) }}

with grouped_buckets as (
    select distinct charge_id, charge_filter_key from {{ ref('stg_catalog__pricing_group_keys') }}
),

accepted as (
    select e.*
    from {{ ref('int_events_checked_daily') }} e
    join grouped_buckets g on g.charge_id = e.charge_id and g.charge_filter_key = coalesce(e.charge_filter_id, 'default')
    where e.rejection_reason is null and {{ in_rebuilt_days('e.arrival_date') }}
),

filter_keys as (select filter_keys from {{ ref('stg_catalog__filter_keys') }}),

final as (
    select
        md5(concat_ws('|', a.billing_period_id, a.charge_id, coalesce(a.charge_filter_id, 'default'),
            {{ list_text('a.dimension_values') }}, a.arrival_date)) as usage_by_dimensions_id,
        a.subscription_id,
        a.billing_period_id,
        a.charge_id,
        a.charge_filter_id,
        -- the events' values of the dimension keys, as a JSON object (keys without a value left out)
        any_value({{ json_object_of_lists('k.filter_keys', 'a.dimension_values') }}) as dimensions_json,
        a.arrival_date,
        any_value(a.aggregation_type) as aggregation_type,
        bool_or(a.is_recurring) as is_recurring,
        any_value(a.invoice_finalized_on) as invoice_finalized_on,
        a.arrival_date > any_value(a.invoice_finalized_on) as is_late,
        sum(a.units_contribution)::decimal(38, 12) as units,
        sum(a.value_sum)::decimal(38, 12) as value_sum,
        max(a.max_value)::decimal(38, 12) as max_value,
        max(a.last_event.event_at) as latest_at,
        {{ value_at_max('a.last_value', 'a.last_event') }}::decimal(38, 12) as latest_value,
        sum(a.events_count)::bigint as events_count
    from accepted a
    cross join filter_keys k
    group by a.subscription_id, a.billing_period_id, a.charge_id, a.charge_filter_id, a.dimension_values, a.arrival_date
)

select f.usage_by_dimensions_id, f.subscription_id, s.customer_id,
    {{ star_except(['usage_by_dimensions_id', 'subscription_id'], 'f') }}
from final f
join {{ ref('stg_catalog__subscriptions') }} s using (subscription_id)
