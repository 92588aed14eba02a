-- Lago's gross revenue (GET /analytics/gross_revenue): per issuing month, currency and customer,
-- the total of finalized invoices (subscription and credit invoices), taxes included and prepaid
-- credits deducted, so credits count once: when bought (credit invoice), not again when consumed.
with invoices as (select * from {{ ref('fct_invoices') }}),

final as (
    select
        date_trunc('month', issuing_date)::date as month,
        currency,
        external_customer_id,
        sum(total_amount_cents)::bigint as amount_cents,
        count(*)::bigint as invoices_count
    from invoices
    where status = 'finalized'
    group by all
)

select * from final
