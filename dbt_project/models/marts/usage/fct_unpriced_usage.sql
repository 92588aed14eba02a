-- Usage that no charge prices: accepted events in a charge's default bucket (they match none of
-- its filters) when the charge has no `properties` of its own. They bill nothing, so they are
-- listed here, in the run summary and as a warning of the run, never only as a 0 line.
-- Per subscription, billing period, charge, filter values and arrival day.
-- Incremental on arrival days.
{{ config(materialized='incremental', **by_arrival_day()) }}

with unpriced_charges as (
    select charge_id, billable_metric_code from {{ ref('stg_catalog__charges') }} where not has_default_price
),

default_buckets as (
    select e.*
    from {{ ref('int_events_checked_daily') }} e
    where e.rejection_reason is null and e.charge_filter_id is null and {{ in_rebuilt_days('e.arrival_date') }}
        and e.charge_id in (select charge_id from unpriced_charges)
),

filter_keys as (select filter_keys from {{ ref('stg_catalog__filter_keys') }}),

final as (
    select
        md5(concat_ws('|', d.billing_period_id, d.charge_id, {{ list_text('d.dimension_values') }}, d.arrival_date))
            as unpriced_usage_id,
        d.subscription_id,
        any_value(d.external_subscription_id) as external_subscription_id,
        d.billing_period_id,
        d.charge_id,
        any_value(c.billable_metric_code) as billable_metric_code,
        -- the event's values of the catalog's filter keys, as a JSON object (keys without a value left out)
        any_value({{ json_object_of_lists('k.filter_keys', 'd.dimension_values') }})
            as filter_values_json,
        d.arrival_date,
        arrival_date > any_value(d.invoice_finalized_on) as is_late,
        sum(d.value_sum)::decimal(38, 12) as units,
        sum(d.events_count)::bigint as events_count
    from default_buckets d
    join unpriced_charges c using (charge_id)
    cross join filter_keys k
    group by d.subscription_id, d.billing_period_id, d.charge_id, d.dimension_values, d.arrival_date
)

select f.unpriced_usage_id, f.subscription_id, f.external_subscription_id, s.external_customer_id,
    {{ star_except(['unpriced_usage_id', 'subscription_id', 'external_subscription_id'], 'f') }}
from final f
join {{ ref('stg_catalog__subscriptions') }} s using (subscription_id)
