-- Well-formed events (where they were read and their ids), each marked as the first arrival of
-- its (subscription, transaction) or as a duplicate. First arrival wins: earliest arrival date,
-- then file, then line, across all days.
-- Incremental on arrival days: the days rebuilt are checked against the first arrivals of the
-- days kept (every kept day is earlier, so its first arrival wins).
-- Narrow on purpose: every event is written here, so only what deduplication needs is kept (the
-- record id `file:line:item` is spelled out for duplicates only).
{{ config(materialized='incremental', **by_arrival_day()) }}

with well_formed as {{ inline_cte() }} (
    select arrival_date, source_file, line_number, item_index, transaction_id, external_subscription_id
    from {{ ref('stg_raw__events') }}
    where load_error is null and {{ in_rebuilt_days() }}
),

-- Ranking every event sorts them all; only transactions sent more than once need it.
repeated as (
    select external_subscription_id, transaction_id
    from well_formed
    group by external_subscription_id, transaction_id
    having count(*) > 1
),

once as (
    select w.*, 1 as arrival_rank, null::{{ text_type() }} as first_event_record_id
    from well_formed w
    anti join repeated r using (external_subscription_id, transaction_id)
),

ranked as (
    select
        w.*,
        row_number() over arrival_order as arrival_rank,
        first_value({{ event_record_id('w') }}) over arrival_order as first_event_record_id
    from well_formed w
    semi join repeated r using (external_subscription_id, transaction_id)
    window arrival_order as (
        partition by w.external_subscription_id, w.transaction_id
        order by w.arrival_date, w.source_file, w.line_number, w.item_index
    )
),

new_days as (
    select * from once
    union all
    select * from ranked
),

{% if is_incremental() %}
earlier as (
    select external_subscription_id, transaction_id, source_file, line_number, item_index
    from {{ this }}
    where {{ in_kept_days() }} and not is_duplicate
),
{% endif %}

marked as (
    select
        {{ star_except(['arrival_rank', 'first_event_record_id'], 'n') }},
        {% if is_incremental() -%}
        e.source_file is not null or n.arrival_rank > 1 as is_duplicate,
        case when e.source_file is not null then {{ event_record_id('e') }} else n.first_event_record_id end
            as first_event_record_id
    from new_days n
    left join earlier e
        on e.external_subscription_id = n.external_subscription_id and e.transaction_id = n.transaction_id
        {%- else -%}
        n.arrival_rank > 1 as is_duplicate,
        n.first_event_record_id
    from new_days n
        {%- endif %}
),

final as (
    select arrival_date, source_file, line_number, item_index, transaction_id, external_subscription_id,
        is_duplicate,
        case when is_duplicate then first_event_record_id end as first_event_record_id
    from marked
)

select * from final
