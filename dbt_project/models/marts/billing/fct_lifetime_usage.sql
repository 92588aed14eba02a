-- Each subscription's lifetime usage as of the billing date, as Lago's LifetimeUsage shows it: the
-- charge fees its earlier periods' invoices billed (period-end and pay-in-advance invoices), the
-- open period's current usage (every charge), their sum, and the usage thresholds reached last and next (progressive billing).
with lifetime as (select * from {{ ref('stg_billing__lifetime_usage') }}),

final as (
    select
        subscription_id, external_subscription_id, customer_id, plan_id, billing_period_id, currency,
        invoiced_usage_amount_cents, current_usage_amount_cents, total_usage_amount_cents,
        last_threshold_amount_cents, next_threshold_amount_cents, as_of
    from lifetime
)

select * from final
