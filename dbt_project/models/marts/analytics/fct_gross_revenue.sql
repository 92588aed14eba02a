-- Lago's gross revenue (GET /analytics/gross_revenue): per issuing month, currency and customer,
-- the total of finalized invoices (subscription and credit invoices), taxes included and prepaid
-- credits and credit notes' credit deducted, so credits count once: when bought (credit invoice),
-- not again when consumed; less the refunds of the credit notes on those invoices (counted in the
-- month of the invoice they correct, as Lago does).
with invoices as (select * from {{ ref('fct_invoices') }}),
refunds as (
    select invoice_id, sum(refund_amount_cents) as refund_amount_cents
    from {{ ref('fct_credit_notes') }}
    group by invoice_id
),

final as (
    select
        date_trunc('month', i.issuing_date)::date as month,
        i.currency,
        i.external_customer_id,
        sum(i.total_amount_cents - coalesce(r.refund_amount_cents, 0))::bigint as amount_cents,
        count(*)::bigint as invoices_count
    from invoices i
    left join refunds r using (invoice_id)
    where i.status = 'finalized'
    group by all
)

select * from final
