select billing_period_id, subscription_id, external_subscription_id, period_start_date, period_end_date,
    period_start_at, period_end_at, charges_from_at, charges_to_at, invoice_finalized_on
from {{ source('calendar', 'billing_periods') }}
