-- Duplicates: each event record not billed because an earlier record had the same
-- (external_subscription_id, transaction_id), with the record that was billed instead
-- (`first_event_record_id`; the first arrival wins: earliest arrival date, then file, then line).
-- A view over the key table of deduplication: duplicates are few, and selected when asked for.
{{ config(materialized='view') }}

select {{ event_record_id() }} as event_record_id, arrival_date, source_file, line_number, item_index,
    transaction_id, external_subscription_id, first_event_record_id
from {{ ref('int_events_deduplicated') }}
where is_duplicate
