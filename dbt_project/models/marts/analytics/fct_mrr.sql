-- Monthly recurring revenue as Lago's GET /analytics/mrr defines it: subscription fees of finalized
-- invoices, less their share of coupons, with their taxes (which apply to the fees less coupons). Monthly plans count in the month their invoice is issued; quarterly,
-- semiannual and yearly fees are spread evenly over 3, 6 or 12 months (the issuing month and the
-- next ones when paid in advance, the months before the issuing month when paid in arrears; the
-- cents left over by the division go to the first months); weekly plans count the month's
-- invoices' total divided by their number, times 4.33 (rounded half-up).
with fees as (select * from {{ ref('stg_billing__fees') }}),
invoices as (select * from {{ ref('stg_billing__invoices') }}),
subscriptions as (select * from {{ ref('stg_catalog__subscriptions') }}),
fee_coupons as (select fee_id, coupons_amount_cents from {{ ref('fct_fee_coupons') }}),
plans as (select * from {{ ref('stg_catalog__plans') }}),

subscription_fees as (
    select
        i.invoice_id, i.issuing_date, i.external_customer_id, f.currency, p.interval as plan_interval,
        p.is_pay_in_advance as is_plan_pay_in_advance,
        f.total_amount_cents - coalesce(c.coupons_amount_cents, 0) as amount_cents,
        f.amount_cents - coalesce(c.coupons_amount_cents, 0) as amount_excluding_taxes_cents,
        case p.interval when 'quarterly' then 3 when 'semiannual' then 6 when 'yearly' then 12 else 1 end as months_spread
    from fees f
    join invoices i using (invoice_id)
    join subscriptions s on s.subscription_id = i.subscription_id
    join plans p on p.plan_id = s.plan_id
    left join fee_coupons c on c.fee_id = f.fee_id
    where f.fee_type = 'subscription' and i.status = 'finalized'
),

spread as (
    select
        (date_trunc('month', issuing_date)
            + to_months(case when is_plan_pay_in_advance or months_spread = 1 then k else k - months_spread end))::date as month,
        external_customer_id, currency, plan_interval, invoice_id,
        (amount_cents // months_spread + case when k < amount_cents % months_spread then 1 else 0 end) as amount_cents,
        (amount_excluding_taxes_cents // months_spread
            + case when k < amount_excluding_taxes_cents % months_spread then 1 else 0 end) as amount_excluding_taxes_cents
    from subscription_fees, range(0, months_spread) as r(k)
    where plan_interval <> 'weekly'
),

weekly as (
    select
        date_trunc('month', issuing_date)::date as month, external_customer_id, currency, plan_interval,
        round(sum(amount_cents)::decimal(38, 6) * 4.33 / count(distinct invoice_id), 0)::bigint as amount_cents,
        round(sum(amount_excluding_taxes_cents)::decimal(38, 6) * 4.33 / count(distinct invoice_id), 0)::bigint
            as amount_excluding_taxes_cents,
        count(distinct invoice_id)::bigint as invoices_count
    from subscription_fees
    where plan_interval = 'weekly'
    group by all
),

final as (
    select month, external_customer_id, currency, plan_interval,
        sum(amount_cents)::bigint as amount_cents,
        sum(amount_excluding_taxes_cents)::bigint as amount_excluding_taxes_cents,
        count(distinct invoice_id)::bigint as invoices_count
    from spread
    group by all
    union all
    select month, external_customer_id, currency, plan_interval, amount_cents, amount_excluding_taxes_cents, invoices_count
    from weekly
)

select * from final
