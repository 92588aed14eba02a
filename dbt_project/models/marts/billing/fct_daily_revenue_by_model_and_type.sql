-- Invoiced usage revenue per issuing day, model and type (finalized invoices only).
with fees as (select * from {{ ref('fct_fees') }}),

final as (
    select issuing_date, coalesce(model, '(unfiltered)') as model, coalesce(token_type, '(unfiltered)') as token_type,
        currency, sum(units) as units, sum(amount_cents) as amount_cents, count(distinct invoice_id) as invoices_count
    from fees
    where invoice_status = 'finalized' and fee_type = 'charge'
    group by all
)

select * from final
