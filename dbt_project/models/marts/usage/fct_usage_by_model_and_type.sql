-- Tokens per subscription, billing period, model and type (input/output), for analysts: what was
-- used, whether or not a charge filter prices it. Late arrivals are included and flagged.
with matched as (select * from {{ ref('int_events_matched_to_charge_filters') }}),
periods as (select * from {{ ref('stg_catalog__billing_periods') }}),

final as (
    select
        md5(concat_ws('|', m.billing_period_id, m.charge_id, coalesce(m.properties['model'], ''), coalesce(m.properties['type'], '')))
            as usage_id,
        m.subscription_id,
        m.external_subscription_id,
        m.external_customer_id,
        m.billing_period_id,
        p.period_start_date,
        p.period_end_date,
        m.charge_id,
        m.billable_metric_code,
        m.properties['model'] as model,
        m.properties['type'] as token_type,
        sum(m.units) as units,
        count(*) as events_count,
        sum(m.units) filter (where m.arrival_date > m.invoice_finalized_on) as late_units
    from matched m
    join periods p using (billing_period_id)
    group by all
)

select * from final
