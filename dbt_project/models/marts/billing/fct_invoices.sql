-- Invoices with their totals (subscription invoices and credit invoices for paid credits), as
-- pricing computed and stored them (billing/invoicing.py, `with_invoice_totals`).
with invoices as (select * from {{ ref('stg_billing__invoices') }}),

final as (
    select
        invoice_id, number, invoice_type, status, issuing_date, external_customer_id,
        external_subscription_id, period_start_date, period_end_date, currency,
        fees_amount_cents, coupons_amount_cents, sub_total_excluding_taxes_amount_cents, taxes_amount_cents,
        sub_total_including_taxes_amount_cents, credit_notes_amount_cents, prepaid_credit_amount_cents,
        total_amount_cents
    from invoices
)

select * from final
