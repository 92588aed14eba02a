select charge_filter_id, charge_id, key as filter_key, value as filter_value
from {{ source('catalog', 'charge_filter_values') }}
