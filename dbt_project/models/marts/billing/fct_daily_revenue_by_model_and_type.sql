-- Invoiced usage revenue per issuing day, model and type (finalized invoices only; after coupons).
with fees as (select * from {{ ref('fct_fees') }}),
fee_coupons as (select fee_id, coupons_amount_cents from {{ ref('fct_fee_coupons') }}),
-- A progressive_billing invoice bills usage its period's closing invoice bills again in full (less
-- the credit of what was billed before): a period's usage counts once, on its closing invoice.
progressive as (select invoice_id from {{ ref('stg_billing__invoices') }} where invoice_type = 'progressive_billing'),

final as (
    select issuing_date, coalesce(model, '(unfiltered)') as model, coalesce(token_type, '(unfiltered)') as token_type,
        currency, sum(units) as units, sum(amount_cents - coalesce(coupons_amount_cents, 0)) as amount_cents,
        count(distinct invoice_id) as invoices_count
    from fees
    left join fee_coupons using (fee_id)
    where invoice_status = 'finalized' and fee_type = 'charge'
      and invoice_id not in (select invoice_id from progressive)
    group by all
)

select * from final
