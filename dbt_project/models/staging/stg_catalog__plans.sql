select plan_id, code as plan_code, name, invoice_display_name, interval, amount_cents, currency, is_pay_in_advance,
    minimum_commitment_cents
from {{ source('catalog', 'plans') }}
