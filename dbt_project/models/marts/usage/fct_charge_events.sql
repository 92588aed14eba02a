-- Events priced one by one: those of charges paid in advance (each event is invoiced as it
-- arrives) and of percentage charges (per-transaction minimum and maximum), which the one pass keeps
-- a row each. Ordered as they were charged: by arrival day, then timestamp, then where they were read.
-- Incremental on arrival days: the order comes first by arrival day, so the days rebuilt continue
-- the order reached by the days kept.
{{ config(materialized='incremental', **by_arrival_day()) }}

with matched as (
    select * from {{ ref('int_events_checked_daily') }}
    where rejection_reason is null and source_file is not null and {{ in_rebuilt_days() }}
),
charges as (select * from {{ ref('stg_catalog__charges') }}),
subscriptions as (select subscription_id, customer_id from {{ ref('stg_catalog__subscriptions') }}),

{% if is_incremental() %}
charged_so_far as (
    select billing_period_id, charge_id, coalesce(charge_filter_id, 'default') as bucket, max(charge_order) as charge_order
    from {{ this }}
    where {{ in_kept_days() }}
    group by all
),
{% endif %}

ordered as (
    select
        {{ event_record_id('m') }} as event_record_id,
        m.transaction_id,
        m.subscription_id,
        s.customer_id,
        m.billing_period_id,
        m.charge_id,
        m.charge_filter_id,
        m.arrival_date,
        m.event_at,
        m.value_sum as units,
        m.invoice_finalized_on,
        row_number() over (
            partition by m.billing_period_id, m.charge_id, coalesce(m.charge_filter_id, 'default')
            order by m.arrival_date, m.event_at, m.source_file, m.line_number, m.item_index
        ) as charge_order
    from matched m
    join charges c using (charge_id)
    join subscriptions s on s.subscription_id = m.subscription_id
    where c.is_pay_in_advance or c.charge_model = 'percentage'
),

final as (
    select {{ star_except(['charge_order'], 'o') }},
        {% if is_incremental() -%}
        o.charge_order + coalesce(s.charge_order, 0) as charge_order
    from ordered o
    left join charged_so_far s
        on s.billing_period_id = o.billing_period_id and s.charge_id = o.charge_id
        and s.bucket = coalesce(o.charge_filter_id, 'default')
        {%- else -%}
        o.charge_order
    from ordered o
        {%- endif %}
)

select * from final
