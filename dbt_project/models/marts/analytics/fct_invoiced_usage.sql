-- Lago's invoiced usage (GET /analytics/invoiced_usage): per issuing month, currency and billable
-- metric, the usage-based (charge) fees of finalized invoices, excluding taxes and after coupons (as
-- Lago subtracts each fee's coupons). The usage of open periods (current usage) is not included.
with fees as (select * from {{ ref('fct_fees') }}),
fee_coupons as (select fee_id, coupons_amount_cents from {{ ref('fct_fee_coupons') }}),
-- A progressive_billing invoice bills usage its period's closing invoice bills again in full (less
-- the credit of what was billed before): a period's usage counts once, on its closing invoice.
progressive as (select invoice_id from {{ ref('stg_billing__invoices') }} where invoice_type = 'progressive_billing'),

final as (
    select
        date_trunc('month', issuing_date)::date as month,
        currency,
        billable_metric_code as code,
        sum(amount_cents - coalesce(coupons_amount_cents, 0))::bigint as amount_cents,
        sum(units) as units,
        count(distinct invoice_id)::bigint as invoices_count
    from fees
    left join fee_coupons using (fee_id)
    where invoice_status = 'finalized' and fee_type = 'charge'
      and invoice_id not in (select invoice_id from progressive)
    group by all
)

select * from final
