-- The pricing input: units and events per subscription, period, charge, filter and arrival day.
-- Keeping the arrival day lets pricing cut an invoice at its finalization date (later arrivals
-- are late) and replay wallet balances day by day, whatever runs loaded the days.
with matched as (select * from {{ ref('int_events_matched_to_charge_filters') }}),

final as (
    select
        md5(concat_ws('|', billing_period_id, charge_id, coalesce(charge_filter_id, 'default'), arrival_date))
            as usage_daily_id,
        subscription_id,
        customer_id,
        billing_period_id,
        charge_id,
        charge_filter_id,
        arrival_date,
        any_value(invoice_finalized_on) as invoice_finalized_on,
        arrival_date > any_value(invoice_finalized_on) as is_late,
        sum(units) as units,
        count(*) as events_count
    from matched
    group by subscription_id, customer_id, billing_period_id, charge_id, charge_filter_id, arrival_date
)

select * from final
