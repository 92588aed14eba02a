select charge_id, plan_id, plan_code, charge_index, billable_metric_id, billable_metric_code, charge_model,
    is_pay_in_advance, invoice_display_name
from {{ source('catalog', 'charges') }}
