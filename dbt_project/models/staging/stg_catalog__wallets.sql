select wallet_id, wallet_key, creation_order, customer_id, external_customer_id, name, code, currency, priority,
    rate_amount, paid_credits, granted_credits, created_at, expiration_at, invoice_requires_successful_payment
from {{ source('catalog', 'wallets') }}
