-- Tokens per subscription, billing period, model and type (input/output), for analysts: what was
-- used, whether or not a charge filter prices it. Late arrivals are included and flagged.
-- Added up from the per-arrival-day partial sums (a small table, rebuilt each run).
with daily as (select * from {{ ref('int_usage_by_model_and_type_daily') }}),
periods as (select * from {{ ref('stg_calendar__billing_periods') }}),

final as (
    select
        md5(concat_ws('|', d.billing_period_id, d.charge_id, coalesce(d.model, ''), coalesce(d.token_type, '')))
            as usage_id,
        d.subscription_id,
        d.external_subscription_id,
        d.external_customer_id,
        d.billing_period_id,
        p.period_start_date,
        p.period_end_date,
        d.charge_id,
        d.billable_metric_code,
        d.model,
        d.token_type,
        sum(d.units) as units,
        sum(d.events_count)::bigint as events_count,
        sum(d.late_units) as late_units
    from daily d
    join periods p using (billing_period_id)
    group by all
)

select * from final
