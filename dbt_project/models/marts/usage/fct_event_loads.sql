-- Reconciliation per arrival day: every raw record is accepted, a duplicate, or rejected.
-- Incremental on arrival days.
{{ config(materialized='incremental', **by_arrival_day()) }}

with raw_records as (
    select arrival_date, count(*) as events_raw, count(load_error) as events_unreadable
    from {{ ref('stg_raw__events') }}
    where {{ in_rebuilt_days() }}
    group by arrival_date
),

duplicates as (
    select arrival_date, count(*) as events_duplicate
    from {{ ref('int_events_deduplicated') }}
    where is_duplicate and {{ in_rebuilt_days() }}
    group by arrival_date
),

validated as (
    select arrival_date,
        coalesce(sum(events_count) filter (where rejection_reason is null), 0)::bigint as events_accepted,
        coalesce(sum(events_count) filter (where rejection_reason is not null), 0)::bigint as events_unbillable,
        coalesce(sum(events_count) filter (where rejection_reason is null and arrival_date > invoice_finalized_on), 0)::bigint
            as events_late
    from {{ ref('int_events_checked_daily') }}
    where is_first_charge and {{ in_rebuilt_days() }}  -- (each event is counted on its first charge's rows)
    group by arrival_date
),

final as (
    select
        r.arrival_date,
        r.events_raw,
        coalesce(v.events_accepted, 0) as events_accepted,
        coalesce(d.events_duplicate, 0) as events_duplicate,
        r.events_unreadable + coalesce(v.events_unbillable, 0) as events_rejected,
        coalesce(v.events_late, 0) as events_late
    from raw_records r
    left join duplicates d using (arrival_date)
    left join validated v using (arrival_date)
)

select * from final
