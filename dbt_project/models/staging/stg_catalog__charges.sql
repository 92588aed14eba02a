select charge_id, plan_id, plan_code, charge_index, billable_metric_id, billable_metric_code, charge_model,
    is_pay_in_advance, invoice_display_name, properties_json,
    -- a charge's own `properties` price its default bucket (the events no filter matches)
    properties_json is not null as has_default_price
from {{ source('catalog', 'charges') }}
