-- Each wallet's balance at the end of every day, from its first ledger entry to the billing date,
-- with the day's movements. Paid credits bought on a credit invoice that must be paid first count
-- from the day they are settled; until then they are `pending_paid_cents`. A wallet whose
-- expiration day has come is terminated: what it held that day expired, and its balance is 0.
-- A table, unlike the other analytics marts: one row per wallet and day (610,000 rows for 10,000
-- wallets over two months), whose day spine, running sums and pending credits a view would evaluate
-- again for each of its tests, fct_prepaid_credits_monthly's and the revenue report (three times a
-- run). Rebuilt by every run whose billing tables changed, like the other billing marts.
{{ config(materialized='table') }}
with transactions as (select * from {{ ref('stg_billing__wallet_transactions') }}),
wallets as (select * from {{ ref('stg_catalog__wallets') }}),
run_state as (select * from {{ ref('stg_billing__run_state') }}),

movements as (
    select
        wallet_id,
        case when transaction_type = 'inbound' then coalesce(settled_on, transaction_date) else transaction_date end as day,
        case when transaction_type = 'inbound' and source <> 'void' then paid_amount_cents else 0 end as paid_in_cents,
        case when transaction_type = 'inbound' and source <> 'void' then granted_amount_cents else 0 end as granted_in_cents,
        case when source = 'invoice_payment' then paid_amount_cents else 0 end as paid_consumed_cents,
        case when source = 'invoice_payment' then granted_amount_cents else 0 end as granted_consumed_cents,
        case when source = 'void' then paid_amount_cents else 0 end as paid_voided_cents,
        case when source = 'void' then granted_amount_cents else 0 end as granted_voided_cents
    from transactions
    where status = 'settled'
),

pending as (
    select wallet_id, transaction_date, settled_on, status, paid_amount_cents
    from transactions
    where transaction_type = 'inbound' and paid_amount_cents > 0
),

spine as (
    select w.wallet_id, w.wallet_key, w.external_customer_id, w.currency, w.expiration_at::date as expires_on,
        unnest(generate_series(f.first_day, (select max(through) from run_state), interval 1 day))::date as balance_date
    from wallets w
    join (select wallet_id, min(transaction_date) as first_day from transactions group by wallet_id) f using (wallet_id)
),

daily_movements as (
    select wallet_id, day, sum(paid_in_cents) as paid_in_cents, sum(granted_in_cents) as granted_in_cents,
        sum(paid_consumed_cents) as paid_consumed_cents, sum(granted_consumed_cents) as granted_consumed_cents,
        sum(paid_voided_cents) as paid_voided_cents, sum(granted_voided_cents) as granted_voided_cents
    from movements
    group by all
),

running as (
    select
        s.*,
        coalesce(m.paid_in_cents, 0)::bigint as paid_in_cents,
        coalesce(m.granted_in_cents, 0)::bigint as granted_in_cents,
        coalesce(m.paid_consumed_cents, 0)::bigint as paid_consumed_cents,
        coalesce(m.granted_consumed_cents, 0)::bigint as granted_consumed_cents,
        coalesce(m.paid_voided_cents, 0)::bigint as paid_voided_cents,
        coalesce(m.granted_voided_cents, 0)::bigint as granted_voided_cents,
        sum(coalesce(m.paid_in_cents, 0) - coalesce(m.paid_consumed_cents, 0) - coalesce(m.paid_voided_cents, 0))
            over (partition by s.wallet_id order by s.balance_date) as paid_held_cents,
        sum(coalesce(m.granted_in_cents, 0) - coalesce(m.granted_consumed_cents, 0) - coalesce(m.granted_voided_cents, 0))
            over (partition by s.wallet_id order by s.balance_date) as granted_held_cents
    from spine s
    left join daily_movements m on m.wallet_id = s.wallet_id and m.day = s.balance_date
),

final as (
    select
        wallet_id, wallet_key, external_customer_id, currency, balance_date,
        paid_in_cents, granted_in_cents, paid_consumed_cents, granted_consumed_cents,
        paid_voided_cents, granted_voided_cents,
        (case when balance_date = expires_on then paid_held_cents else 0 end)::bigint as paid_expired_cents,
        (case when balance_date = expires_on then granted_held_cents else 0 end)::bigint as granted_expired_cents,
        (case when balance_date >= expires_on then 0 else paid_held_cents end)::bigint as paid_balance_cents,
        (case when balance_date >= expires_on then 0 else granted_held_cents end)::bigint as granted_balance_cents,
        (case when balance_date >= expires_on then 0 else paid_held_cents + granted_held_cents end)::bigint as balance_cents,
        coalesce((select sum(p.paid_amount_cents) from pending p
                  where p.wallet_id = r.wallet_id and p.transaction_date <= r.balance_date
                    and (p.status = 'pending' or p.settled_on > r.balance_date)), 0)::bigint as pending_paid_cents,
        case when balance_date >= expires_on then 'terminated' else 'active' end as status
    from running r
)

select * from final
