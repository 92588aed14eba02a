-- The append-only wallet ledger: credits granted, bought and consumed.
with transactions as (select * from {{ ref('stg_billing__wallet_transactions') }}),
wallets as (select * from {{ ref('stg_catalog__wallets') }}),

final as (
    select t.wallet_transaction_id, t.wallet_id, w.wallet_key, w.external_customer_id, t.transaction_date,
        t.sequence, t.transaction_type, t.source, t.status, t.granted_amount_cents, t.paid_amount_cents,
        t.credit_amount, t.balance_after_cents, t.invoice_id
    from transactions t
    join wallets w using (wallet_id)
)

select * from final
