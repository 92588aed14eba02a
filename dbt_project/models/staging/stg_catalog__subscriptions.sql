select subscription_id, external_id as external_subscription_id, customer_id, external_customer_id,
    plan_id, plan_code, subscription_at as started_at, terminated_at, timezone, currency
from {{ source('catalog', 'subscriptions') }}
