select
    arrival_date,
    source_file,
    line_number,
    item_index,
    {{ event_record_id() }} as event_record_id,
    transaction_id,
    code as billable_metric_code,
    external_subscription_id,
    event_timestamp_text,
    event_at,
    is_timestamp_defaulted,
    properties,
    load_error,
    load_error_detail
from {{ source('raw', 'events') }}
