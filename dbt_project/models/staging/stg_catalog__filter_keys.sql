-- The property keys the metrics' filters declare, in one sorted list: an event's values of these
-- keys, in this order, are its `dimension_values` (what decides its charge filter).
select coalesce(list(key order by key) filter (where is_filter_key), []::varchar[]) as filter_keys
from {{ source('catalog', 'property_keys') }}
