-- What each coupon took off each invoice (Lago's credits of type coupon): before taxes, in the order
-- the coupons applied. The invoice's `coupons_amount_cents` is their sum; its sub-total excluding
-- taxes is its fees less that (fct_invoices).
with credits as (select * from {{ ref('stg_billing__coupon_credits') }}),
invoices as (select * from {{ ref('stg_billing__invoices') }}),

final as (
    select
        c.coupon_credit_id, c.invoice_id, i.number as invoice_number, i.status as invoice_status, i.issuing_date,
        i.external_customer_id, i.external_subscription_id, c.applied_coupon_id, c.coupon_code, c.coupon_name,
        c.credit_order, c.amount_cents, c.currency, i.fees_amount_cents as invoice_fees_amount_cents,
        i.coupons_amount_cents as invoice_coupons_amount_cents
    from credits c
    join invoices i using (invoice_id)
)

select * from final
