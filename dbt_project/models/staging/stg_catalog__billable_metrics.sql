select billable_metric_id, code as billable_metric_code, name, aggregation_type, field_name, is_recurring
from {{ source('catalog', 'billable_metrics') }}
