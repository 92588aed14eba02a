-- The dimension keys: the property keys the metrics' filters declare or charges group on
-- (`pricing_group_keys`), in one sorted list. An event's values of these keys, in this order, are
-- its `dimension_values` (what decides its charge filter, and its group).
select {{ sorted_list('key', 'is_filter_key or is_group_key') }} as filter_keys
from {{ source('catalog', 'property_keys') }}
