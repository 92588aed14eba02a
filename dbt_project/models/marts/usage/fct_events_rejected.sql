-- The quarantine: every event record that was not billed and is not a duplicate, with its reason.
-- Incremental on arrival days.
{{ config(materialized='incremental', **by_arrival_day()) }}

with unreadable as (
    select e.event_record_id, e.arrival_date, e.source_file, e.line_number, e.item_index, e.transaction_id,
        e.external_subscription_id, e.billable_metric_code, e.event_timestamp_text,
        e.load_error as rejection_reason, e.load_error_detail as rejection_detail, l.raw_line
    from {{ ref('stg_raw__events') }} e
    left join {{ ref('stg_raw__rejected_lines') }} l
        on l.arrival_date = e.arrival_date and l.source_file = e.source_file and l.line_number = e.line_number
    where e.load_error is not null and {{ in_rebuilt_days('e.arrival_date') }}
),

unbillable as (
    select {{ event_record_id() }} as event_record_id, arrival_date, source_file, line_number, item_index, transaction_id,
        external_subscription_id, billable_metric_code, event_timestamp_text,
        rejection_reason, rejection_detail, null as raw_line
    from {{ ref('int_events_checked_daily') }}
    where rejection_reason is not null and {{ in_rebuilt_days() }}
),

final as (
    select * from unreadable
    union all
    select * from unbillable
)

select * from final
