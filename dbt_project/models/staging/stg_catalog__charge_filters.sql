select charge_filter_id, charge_id, filter_index, invoice_display_name, key_count, value_count, filter_values_json,
    properties_json
from {{ source('catalog', 'charge_filters') }}
