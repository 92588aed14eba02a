select charge_id, charge_filter_key, group_key, key_index
from {{ source('catalog', 'pricing_group_keys') }}
