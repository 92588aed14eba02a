-- The pricing input: per subscription, period, charge, filter and arrival day, the partial
-- aggregates every Lago aggregation can be rebuilt from for any arrival cut-off:
--   units         additive part: sum (sum_agg), events (count_agg), values seen for the first time
--                 (unique_count_agg), value * share of the billed window (charges from/to) left after the event (weighted_sum_agg)
--   value_sum     plain sum of values (what a recurring weighted sum carries into later periods)
--   max_value     largest value (max_agg)
--   latest_*      the last event by timestamp (latest_agg)
-- Keeping the arrival day lets pricing cut an invoice at its finalization date (later arrivals are
-- late) and replay wallet balances day by day, whatever runs loaded the days.
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_rebuilt_days() }}") }}

-- The aggregation of each charge's metric (the event table leaves out what depends on the metric
-- alone; the customer is joined in after aggregating).
with charge_aggregations as (
    select c.charge_id, bm.aggregation_type
    from {{ ref('stg_catalog__charges') }} c
    join {{ ref('stg_catalog__billable_metrics') }} bm using (billable_metric_id)
),

-- `matched` and `with_period` are read by both branches of `first_values`: computed where they are
-- read (two scans of the table) instead of held as one materialized copy of every event (at 100M
-- events that copy and its two reads cost 170 s, the scans 20 s).
matched as {{ inline_cte() }} (
    select e.*, a.aggregation_type
    from {{ ref('int_events_matched_to_charge_filters') }} e
    join charge_aggregations a using (charge_id)
    where e.rejection_reason is null and {{ in_rebuilt_days('e.arrival_date') }}
),
periods as (select * from {{ ref('stg_calendar__billing_periods') }}),

with_period as {{ inline_cte() }} (
    select m.*, p.charges_from_at, p.charges_to_at,
        -- unique_count_agg: a value counts once per period, or once per subscription when recurring
        case when m.is_recurring then m.subscription_id else m.billing_period_id end as value_scope
    from matched m
    join periods p using (billing_period_id)
),

{% if is_incremental() %}
-- Values of unique_count_agg charges already counted on the days kept.
seen_values as (
    select distinct case when e.is_recurring then e.subscription_id else e.billing_period_id end as value_scope,
        e.charge_id, coalesce(e.charge_filter_id, 'default') as bucket, e.field_value
    from {{ ref('int_events_matched_to_charge_filters') }} e
    join charge_aggregations a using (charge_id)
    where {{ in_kept_days('e.arrival_date') }} and e.rejection_reason is null and a.aggregation_type = 'unique_count_agg'
),
{% endif %}

-- Only unique_count_agg needs to know whether a value was seen before (a window over its events).
first_values as (
    select *, null::boolean as is_first_of_value
    from with_period
    where aggregation_type is distinct from 'unique_count_agg'
    union all
    select
        w.*,
        row_number() over (
            partition by w.value_scope, w.charge_id, coalesce(w.charge_filter_id, 'default'), w.field_value
            order by w.arrival_date, w.event_at, w.source_file, w.line_number, w.item_index
        ) = 1
        {%- if is_incremental() %}
        and not exists (
            select 1 from seen_values s
            where s.value_scope = w.value_scope and s.charge_id = w.charge_id
                and s.bucket = coalesce(w.charge_filter_id, 'default') and s.field_value = w.field_value
        )
        {%- endif %} as is_first_of_value
    from with_period w
    where w.aggregation_type = 'unique_count_agg'
),

contributions as (
    select
        *,
        case aggregation_type
            when 'unique_count_agg' then case when is_first_of_value then 1 else 0 end
            when 'weighted_sum_agg' then units
                * ({{ epoch_microseconds('charges_to_at') }} - {{ epoch_microseconds('event_at') }})::decimal(38, 12)
                / ({{ epoch_microseconds('charges_to_at') }} - {{ epoch_microseconds('charges_from_at') }})::decimal(38, 12)
            when 'max_agg' then 0
            when 'latest_agg' then 0
            else units
        end::decimal(38, 12) as units_contribution
    from first_values
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
        sum(units_contribution)::decimal(38, 12) as units,
        sum(units)::decimal(38, 12) as value_sum,
        max(units)::decimal(38, 12) as max_value,
        max(event_at) as latest_at,
        -- the last event by timestamp, then where it was read (a struct compares field by field)
        arg_max(units, (event_at, source_file, line_number, item_index))::decimal(38, 12) as latest_value,
        count(*) as events_count
    from contributions
    group by subscription_id, billing_period_id, charge_id, charge_filter_id, arrival_date
)

select f.usage_daily_id, f.subscription_id, s.customer_id, f.* exclude (usage_daily_id, subscription_id)
from final f
join {{ ref('stg_catalog__subscriptions') }} s using (subscription_id)
