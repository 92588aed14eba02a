-- Well-formed events, each marked as the first arrival of its (subscription, transaction) or as a
-- duplicate. First arrival wins: earliest arrival date, then file, then line, across all days.
with well_formed as (
    select * from {{ ref('stg_raw__events') }}
    where load_error is null
),

ranked as (
    select
        *,
        row_number() over arrival_order as arrival_rank,
        first_value(event_record_id) over arrival_order as first_event_record_id
    from well_formed
    window arrival_order as (
        partition by external_subscription_id, transaction_id
        order by arrival_date, source_file, line_number, item_index
    )
),

final as (
    select *, arrival_rank > 1 as is_duplicate
    from ranked
)

select * from final
