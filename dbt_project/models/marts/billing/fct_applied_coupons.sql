-- Coupons applied to customers, with what is left of each as of the billing date: the remaining
-- amount of a fixed coupon applied once, the invoices left of a recurring one, its status.
with applied as (select * from {{ ref('stg_billing__applied_coupons') }}),

final as (
    select
        applied_coupon_id, external_customer_id, coupon_code, coupon_name, coupon_type, amount_cents,
        amount_currency, percentage_rate, frequency, frequency_duration, applied_on, status,
        amount_cents_remaining, frequency_duration_remaining, terminated_on, invoices_count, consumed_amount_cents
    from applied
)

select * from final
