-- Invoiced revenue per issuing day, customer, fee type, metric, model and token type
-- (finalized invoices only; fees excluding taxes and after coupons, with their taxes beside them):
-- a day's revenue of a customer is the sub-total excluding taxes of its invoices that day.
with fees as (select * from {{ ref('fct_fees') }}),
fee_coupons as (select fee_id, coupons_amount_cents from {{ ref('fct_fee_coupons') }}),
-- A progressive_billing invoice bills usage its period's closing invoice bills again in full (less
-- the credit of what was billed before): a period's usage counts once, on its closing invoice.
progressive as (select invoice_id from {{ ref('stg_billing__invoices') }} where invoice_type = 'progressive_billing'),
keyed as (
    select f.fee_id, f.invoice_id, f.billing_period_id, f.charge_id, f.charge_filter_key, f.taxes_amount_cents,
        coalesce(g.grouped_by, '') as grouped_by, f.invoice_id in (select invoice_id from progressive) as is_progressive
    from {{ ref('stg_billing__fees') }} f
    left join {{ ref('stg_billing__fee_groups') }} g using (fee_id)
),
-- Each fee's taxes. The closing invoice's fee is taxed only on what the progressive invoices did
-- not bill (their credit comes off before taxes); the rest of its taxes are on the period's
-- progressive invoices' fees of the same charge, filter and group. They are added to it, so that
-- the taxes stand beside the whole amount they belong to (not dropped with those invoices' lines).
fee_taxes as (
    select c.fee_id, (c.taxes_amount_cents + coalesce(sum(p.taxes_amount_cents), 0))::bigint as taxes_amount_cents
    from keyed c
    left join keyed p
      on p.is_progressive and p.billing_period_id = c.billing_period_id and p.charge_id = c.charge_id
     and p.charge_filter_key = c.charge_filter_key and p.grouped_by = c.grouped_by
    where not c.is_progressive
    group by c.fee_id, c.taxes_amount_cents
),

final as (
    select
        f.issuing_date as revenue_date,
        date_trunc('month', f.issuing_date)::date as revenue_month,
        f.external_customer_id,
        f.fee_type,
        coalesce(f.billable_metric_code, '(none)') as billable_metric_code,
        coalesce(f.model, case when f.fee_type = 'charge' then '(unfiltered)' else '(' || f.fee_type || ')' end) as model,
        coalesce(f.token_type, case when f.fee_type = 'charge' then '(unfiltered)' else '(' || f.fee_type || ')' end) as token_type,
        f.currency,
        sum(f.units) as units,
        sum(f.amount_cents - coalesce(c.coupons_amount_cents, 0))::bigint as amount_cents,
        sum(coalesce(t.taxes_amount_cents, 0))::bigint as taxes_amount_cents,
        count(*)::bigint as fees_count,
        count(distinct f.invoice_id)::bigint as invoices_count
    from fees f
    left join fee_taxes t using (fee_id)
    left join fee_coupons c using (fee_id)
    where f.invoice_status = 'finalized'
      and f.invoice_id not in (select invoice_id from progressive)
    group by all
)

select * from final
