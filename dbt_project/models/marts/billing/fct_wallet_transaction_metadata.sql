-- The metadata of wallet transactions (Lago's `[{key, value}]`): the `transaction_metadata` of a wallet
-- (its creation credits) or of a top-up rule, or a manual transaction's `metadata`, kept as given.
with transactions as (select * from {{ ref('stg_billing__wallet_transactions') }} where metadata_json is not null),
wallets as (select * from {{ ref('stg_catalog__wallets') }}),

items as (
    select wallet_transaction_id, wallet_id, transaction_date, source,
        unnest(from_json(metadata_json, '[{"key": "VARCHAR", "value": "VARCHAR"}]'), recursive := true),
        generate_subscripts(from_json(metadata_json, '["JSON"]'), 1) as metadata_position
    from transactions
),

final as (
    select i.wallet_transaction_id, i.metadata_position, i.wallet_id, w.wallet_key, w.external_customer_id,
        i.transaction_date, i.source, i.key as metadata_key, i.value as metadata_value
    from items i
    join wallets w using (wallet_id)
)

select * from final
