-- The property keys the metrics' filters declare, in one sorted list: an event's values of these
-- keys, in this order, are its `dimension_values` (what decides its charge filter).
select {{ sorted_list('key', 'is_filter_key') }} as filter_keys
from {{ source('catalog', 'property_keys') }}
