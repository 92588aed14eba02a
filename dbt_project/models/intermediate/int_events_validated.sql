-- First arrivals checked against the catalog and attached to their subscription and billing
-- period. An event that cannot be billed keeps its row with a `rejection_reason`.
-- Ephemeral: its only reader, `int_events_matched_to_charge_filters`, writes every checked event
-- once, matched or rejected (writing each event to two tables cost more than checking it).
-- It reads only the arrival days being rebuilt (all of them in a full build).
-- The row is narrow: where the event was read (the record id is built where it is shown), its
-- dimensions (the values of the filter keys) instead of the whole properties map, and the texts
-- only the quarantine shows kept for rejected events.
{{ config(materialized='ephemeral') }}

with duplicates as (
    select source_file, line_number, item_index from {{ ref('int_events_deduplicated') }}
    where is_duplicate and arrival_date >= {{ rebuild_from() }}
),

filter_keys as (select filter_keys from {{ ref('stg_catalog__filter_keys') }}),

first_arrivals as {{ inline_cte() }} (
    -- (the load error columns are null for well-formed events)
    select e.arrival_date, e.source_file, e.line_number, e.item_index, e.transaction_id, e.billable_metric_code,
        e.external_subscription_id, e.event_timestamp_text, e.event_at, e.properties
    from {{ ref('stg_raw__events') }} e
    anti join duplicates d using (source_file, line_number, item_index)
    where e.load_error is null and e.arrival_date >= {{ rebuild_from() }}
),

metrics as (select * from {{ ref('stg_catalog__billable_metrics') }}),
subscriptions as (select * from {{ ref('stg_catalog__subscriptions') }}),
periods as (select * from {{ ref('stg_calendar__billing_periods') }}),
charges as (select * from {{ ref('stg_catalog__charges') }}),

-- The catalog checks as small lookups joined once (not correlated subqueries over the events).
known_subscriptions as (select distinct external_subscription_id from subscriptions),
charged_metrics as (select distinct plan_id, billable_metric_id from charges),
-- External ids with several subscription rows (plan changes): the latest started one covering the
-- event wins; every other id has one row, which covers the event or not.
changed_subscriptions as (
    select external_subscription_id from subscriptions group by external_subscription_id having count(*) > 1
),

with_metric as {{ inline_cte() }} (
    select e.* exclude (properties), m.billable_metric_id, m.aggregation_type, m.field_name, m.is_recurring,
        case when m.field_name is not null then {{ property('e.properties', 'm.field_name') }} end as field_value,
        {{ property_values('e.properties', 'k.filter_keys') }} as dimension_values
    from first_arrivals e
    cross join filter_keys k
    left join metrics m using (billable_metric_code)
),

with_one_subscription as (
    select e.*, s.subscription_id, s.plan_id, s.customer_id, s.external_customer_id
    from with_metric e
    left join subscriptions s
        on s.external_subscription_id = e.external_subscription_id
        -- (bounds without OR, so that DuckDB hashes on the id instead of a nested loop join)
        and coalesce(s.started_at, cast('0001-01-01' as timestamp)) <= e.event_at
        and e.event_at <= coalesce(s.terminated_at, cast('9999-12-31' as timestamp))
    where e.external_subscription_id not in (select external_subscription_id from changed_subscriptions)
),

with_changed_subscription as (
    select e.*, s.subscription_id, s.plan_id, s.customer_id, s.external_customer_id
    from with_metric e
    left join subscriptions s
        on s.external_subscription_id = e.external_subscription_id
        -- (bounds without OR, so that DuckDB hashes on the id instead of a nested loop join)
        and coalesce(s.started_at, cast('0001-01-01' as timestamp)) <= e.event_at
        and e.event_at <= coalesce(s.terminated_at, cast('9999-12-31' as timestamp))
    where e.external_subscription_id in (select external_subscription_id from changed_subscriptions)
    qualify row_number() over (
        partition by e.source_file, e.line_number, e.item_index order by s.started_at desc nulls last
    ) = 1
),

with_subscription as (
    select * from with_one_subscription
    union all
    select * from with_changed_subscription
),

with_period as (
    select e.*, p.billing_period_id, p.invoice_finalized_on
    from with_subscription e
    left join periods p
        on p.subscription_id = e.subscription_id
        and p.period_start_at <= e.event_at
        and e.event_at < p.period_end_at
),

checked as (
    select
        e.*,
        case
            when e.billable_metric_id is null then 'unknown_metric_code'
            when k.external_subscription_id is null then 'unknown_subscription'
            when e.event_at >= e.arrival_date + to_days(1 + {{ var('future_tolerance_days') }})
                then 'timestamp_in_future'
            when e.subscription_id is null or e.billing_period_id is null then 'timestamp_outside_subscription'
            when c.plan_id is null then 'metric_not_in_plan'
            when e.aggregation_type in ('sum_agg', 'max_agg', 'latest_agg', 'weighted_sum_agg')
                and not ({{ is_decimal_number('e.field_value') }}
                         and {{ to_decimal('e.field_value') }} is not null
                         -- at most 15 integer digits, so that sums of millions of events still fit
                         and length(split_part(ltrim(e.field_value, '-'), '.', 1)) <= 15)
                then 'invalid_field_value'
            when e.aggregation_type = 'unique_count_agg' and coalesce(e.field_value, '') = ''
                then 'invalid_field_value'
            -- Token counts and peaks cannot be negative: a negative sum or max is a client bug, not a
            -- refund (latest_agg clamps negatives to 0 and weighted sums may go down, as in Lago).
            when e.aggregation_type in ('sum_agg', 'max_agg') and {{ to_decimal('e.field_value') }} < 0
                then 'negative_field_value'
        end as rejection_reason
    from with_period e
    left join known_subscriptions k on k.external_subscription_id = e.external_subscription_id
    left join charged_metrics c on c.plan_id = e.plan_id and c.billable_metric_id = e.billable_metric_id
),

described as (
    select
        *,
        case rejection_reason
            when 'unknown_metric_code' then 'field code: no billable metric ' || billable_metric_code
            when 'unknown_subscription' then 'field external_subscription_id: no subscription ' || external_subscription_id
            when 'timestamp_in_future' then 'field timestamp: ' || {{ iso_timestamp('event_at') }} || ' is after its arrival date ' || arrival_date
            when 'timestamp_outside_subscription' then 'field timestamp: ' || {{ iso_timestamp('event_at') }} || ' is outside every period of subscription ' || external_subscription_id
            when 'metric_not_in_plan' then 'field code: the plan of subscription ' || external_subscription_id || ' has no charge on ' || billable_metric_code
            when 'negative_field_value' then 'field properties.' || field_name || ': ''' || field_value || ''' is negative'
            when 'invalid_field_value' then 'field properties.' || field_name || ': ' || coalesce('''' || field_value || '''', 'missing')
                || case when aggregation_type = 'unique_count_agg' then ' is empty'
                        when {{ is_decimal_number('field_value') }} then ' is out of range (more than 15 integer digits)'
                        else ' is not a number' end
        end as rejection_detail,
        case
            when rejection_reason is not null then null
            when aggregation_type in ('count_agg', 'unique_count_agg') then 1::decimal(38, 12)
            else {{ to_decimal('field_value') }}
        end as units
    from checked
),

final as (
    select
        arrival_date, source_file, line_number, item_index, transaction_id, external_subscription_id,
        billable_metric_code, event_at, billable_metric_id, aggregation_type, field_name, is_recurring,
        subscription_id, plan_id, customer_id, external_customer_id, billing_period_id, invoice_finalized_on,
        dimension_values, units,
        -- the counted value of unique_count_agg; for the others, units holds the value
        case when aggregation_type = 'unique_count_agg' or rejection_reason is not null then field_value end
            as field_value,
        rejection_reason, rejection_detail,
        case when rejection_reason is not null then event_timestamp_text end as event_timestamp_text
    from described
)

select * from final
