-- Events priced one by one: those of charges paid in advance (each event is invoiced as it
-- arrives) and of percentage charges (per-transaction minimum and maximum). Ordered as they were
-- charged: by arrival day, then timestamp, then where they were read.
with matched as (select * from {{ ref('int_events_matched_to_charge_filters') }}),
charges as (select * from {{ ref('stg_catalog__charges') }}),

final as (
    select
        m.event_record_id,
        m.transaction_id,
        m.subscription_id,
        m.customer_id,
        m.billing_period_id,
        m.charge_id,
        m.charge_filter_id,
        m.arrival_date,
        m.event_at,
        m.units,
        m.invoice_finalized_on,
        row_number() over (
            partition by m.billing_period_id, m.charge_id, coalesce(m.charge_filter_id, 'default')
            order by m.arrival_date, m.event_at, m.event_record_id
        ) as charge_order
    from matched m
    join charges c using (charge_id)
    where c.is_pay_in_advance or c.charge_model = 'percentage'
)

select * from final
