-- Invoiced revenue per issuing month, customer, fee type, metric, model and token type.
with daily as (select * from {{ ref('fct_revenue_daily') }}),

final as (
    select
        revenue_month,
        external_customer_id,
        fee_type,
        billable_metric_code,
        model,
        token_type,
        currency,
        sum(units) as units,
        sum(amount_cents)::bigint as amount_cents,
        sum(taxes_amount_cents)::bigint as taxes_amount_cents,
        sum(fees_count)::bigint as fees_count
    from daily
    group by all
)

select * from final
