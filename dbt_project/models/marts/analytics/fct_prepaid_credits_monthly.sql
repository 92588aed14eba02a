-- Prepaid credits per wallet and calendar month: sold (paid credits that became available), granted,
-- consumed by invoices, voided, expired, and what is left at the month's end. The paid balance at
-- the month's end is the liability a finance team reports (cash received for usage not delivered
-- yet); granted credits cost nothing and are reported apart. For every row:
-- opening + bought/granted - consumed - voided - expired = closing.
with daily as (select * from {{ ref('fct_wallet_balances_daily') }}),

monthly as (
    select
        wallet_id, wallet_key, external_customer_id, currency,
        date_trunc('month', balance_date)::date as month,
        sum(paid_in_cents)::bigint as paid_credits_sold_cents,
        sum(granted_in_cents)::bigint as granted_credits_cents,
        sum(paid_consumed_cents)::bigint as paid_credits_consumed_cents,
        sum(granted_consumed_cents)::bigint as granted_credits_consumed_cents,
        sum(paid_voided_cents)::bigint as paid_credits_voided_cents,
        sum(granted_voided_cents)::bigint as granted_credits_voided_cents,
        sum(paid_expired_cents)::bigint as paid_credits_expired_cents,
        sum(granted_expired_cents)::bigint as granted_credits_expired_cents,
        arg_max(paid_balance_cents, balance_date) as paid_credits_outstanding_cents,
        arg_max(granted_balance_cents, balance_date) as granted_credits_outstanding_cents,
        arg_max(pending_paid_cents, balance_date) as paid_credits_pending_cents,
        max(balance_date) as as_of
    from daily
    group by all
),

final as (
    select
        month, wallet_id, wallet_key, external_customer_id, currency,
        (paid_credits_outstanding_cents - paid_credits_sold_cents + paid_credits_consumed_cents
            + paid_credits_voided_cents + paid_credits_expired_cents)::bigint as paid_credits_opening_cents,
        paid_credits_sold_cents, paid_credits_consumed_cents, paid_credits_voided_cents, paid_credits_expired_cents,
        paid_credits_outstanding_cents,
        (granted_credits_outstanding_cents - granted_credits_cents + granted_credits_consumed_cents
            + granted_credits_voided_cents + granted_credits_expired_cents)::bigint as granted_credits_opening_cents,
        granted_credits_cents, granted_credits_consumed_cents, granted_credits_voided_cents, granted_credits_expired_cents,
        granted_credits_outstanding_cents,
        paid_credits_pending_cents,
        as_of
    from monthly
)

select * from final
