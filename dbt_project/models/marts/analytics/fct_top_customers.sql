-- Customers ranked by invoiced revenue (fees of finalized invoices, excluding taxes) per issuing
-- month and currency, with their usage fees, gross revenue and share of the month.
with revenue as (select * from {{ ref('fct_revenue_monthly') }}),
gross as (select * from {{ ref('fct_gross_revenue') }}),

by_customer as (
    select revenue_month as month, currency, external_customer_id,
        sum(amount_cents)::bigint as revenue_cents,
        sum(case when fee_type = 'charge' then amount_cents else 0 end)::bigint as usage_revenue_cents,
        sum(case when fee_type = 'subscription' then amount_cents else 0 end)::bigint as subscription_revenue_cents
    from revenue
    group by all
),

final as (
    select
        c.month, c.currency, c.external_customer_id,
        c.revenue_cents, c.usage_revenue_cents, c.subscription_revenue_cents,
        coalesce(g.amount_cents, 0)::bigint as gross_revenue_cents,
        rank() over (partition by c.month, c.currency order by c.revenue_cents desc) as revenue_rank,
        case when sum(c.revenue_cents) over (partition by c.month, c.currency) = 0 then null
             else round(c.revenue_cents::decimal(38, 6) / sum(c.revenue_cents) over (partition by c.month, c.currency), 6)::decimal(18, 6)
        end as share_of_month_revenue
    from by_customer c
    left join gross g using (month, currency, external_customer_id)
)

select * from final
