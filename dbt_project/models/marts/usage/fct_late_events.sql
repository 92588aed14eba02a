-- Events that arrived after the invoice of their period was finalized: reported, never billed.
-- Incremental on arrival days.
{{ config(materialized='incremental', **by_arrival_day()) }}

-- (one row per event: the row of its first charge)
with events as (
    select *, value_sum as units  -- (a late event keeps its own row: value_sum is its value)
    from {{ ref('int_events_checked_daily') }}
    where is_first_charge
),

final as (
    select {{ event_record_id() }} as event_record_id, arrival_date, invoice_finalized_on, source_file, line_number, transaction_id,
        external_subscription_id, subscription_id, billing_period_id, billable_metric_code, event_at, units
    from events
    where rejection_reason is null and arrival_date > invoice_finalized_on and {{ in_rebuilt_days() }}
)

select * from final
