-- Lago's invoiced usage (GET /analytics/invoiced_usage): per issuing month, currency and billable
-- metric, the usage-based (charge) fees of finalized invoices, excluding taxes. The usage of open
-- periods (current usage) is not included.
with fees as (select * from {{ ref('fct_fees') }}),

final as (
    select
        date_trunc('month', issuing_date)::date as month,
        currency,
        billable_metric_code as code,
        sum(amount_cents)::bigint as amount_cents,
        sum(units) as units,
        count(distinct invoice_id)::bigint as invoices_count
    from fees
    where invoice_status = 'finalized' and fee_type = 'charge'
    group by all
)

select * from final
