-- The pricing input: per subscription, period, charge, filter and arrival day, the partial
-- aggregates every Lago aggregation can be rebuilt from for any arrival cut-off:
--   units         additive part: sum (sum_agg), events (count_agg), values seen for the first time
--                 (unique_count_agg), value * share of the billed window (charges from/to) left after the event (weighted_sum_agg)
--   value_sum     plain sum of values (what a recurring weighted sum carries into later periods)
--   max_value     largest value (max_agg)
--   latest_*      the last event by timestamp (latest_agg)
-- Keeping the arrival day lets pricing cut an invoice at its finalization date (later arrivals are
-- late) and replay wallet balances day by day, whatever runs loaded the days.
-- Added up from the one pass's rows (`int_events_checked_daily`), which hold these aggregates per
-- combination of dimensions; only unique counts look at earlier days (the values already seen).
{{ config(materialized='incremental', **by_arrival_day()) }}

with accepted as (
    select * from {{ ref('int_events_checked_daily') }}
    where rejection_reason is null and {{ in_rebuilt_days() }}
),

{% if is_incremental() %}
-- Values of unique_count_agg charges already counted on the days kept.
seen_values as (
    select distinct case when is_recurring then subscription_id else billing_period_id end as value_scope,
        charge_id, coalesce(charge_filter_id, 'default') as bucket, field_value
    from {{ ref('int_events_checked_daily') }}
    where {{ in_kept_days() }} and rejection_reason is null and aggregation_type = 'unique_count_agg'
),
{% endif %}

-- Only unique_count_agg needs to know whether a value was seen before: a value counts once per
-- period, or once per subscription when recurring, on the row of its first event.
first_values as (
    select *, units_contribution as units
    from accepted
    where aggregation_type is distinct from 'unique_count_agg'
    union all
    select
        a.*,
        case when row_number() over (
            partition by case when a.is_recurring then a.subscription_id else a.billing_period_id end,
                a.charge_id, coalesce(a.charge_filter_id, 'default'), a.field_value
            order by a.arrival_date, a.first_event
        ) = 1
        {%- if is_incremental() %}
        and not exists (
            select 1 from seen_values s
            where s.value_scope = case when a.is_recurring then a.subscription_id else a.billing_period_id end
                and s.charge_id = a.charge_id
                and s.bucket = coalesce(a.charge_filter_id, 'default') and s.field_value = a.field_value
        )
        {%- endif %} then 1 else 0 end::decimal(38, 12) as units
    from accepted a
    where a.aggregation_type = 'unique_count_agg'
),

final as (
    select
        md5(concat_ws('|', billing_period_id, charge_id, coalesce(charge_filter_id, 'default'), arrival_date))
            as usage_daily_id,
        subscription_id,
        billing_period_id,
        charge_id,
        charge_filter_id,
        arrival_date,
        any_value(aggregation_type) as aggregation_type,
        bool_or(is_recurring) as is_recurring,
        any_value(invoice_finalized_on) as invoice_finalized_on,
        arrival_date > any_value(invoice_finalized_on) as is_late,
        sum(units)::decimal(38, 12) as units,
        sum(value_sum)::decimal(38, 12) as value_sum,
        max(max_value)::decimal(38, 12) as max_value,
        max(last_event.event_at) as latest_at,
        {{ value_at_max('last_value', 'last_event') }}::decimal(38, 12) as latest_value,
        sum(events_count)::bigint as events_count
    from first_values
    group by subscription_id, billing_period_id, charge_id, charge_filter_id, arrival_date
)

select f.usage_daily_id, f.subscription_id, s.customer_id, {{ star_except(['usage_daily_id', 'subscription_id'], 'f') }}
from final f
join {{ ref('stg_catalog__subscriptions') }} s using (subscription_id)
