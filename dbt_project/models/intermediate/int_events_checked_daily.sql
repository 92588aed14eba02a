-- The one pass over the events. It reads the arrival days being rebuilt from the raw layer once, and in
-- one query: leaves out the duplicates (`int_events_deduplicated`), checks each first arrival against
-- the catalog, attaches it to its subscription and billing period, takes each charge of its plan on
-- its metric, and aggregates to the daily usage grain; the charge filter is matched last, once per
-- charge and combination of dimensions of the aggregated rows (not once per event).
--
-- Grain: one row per arrival day, subscription, billing period, charge and combination of dimensions
-- (the values of the filter keys, `dimension_values`), whose events pricing cannot tell apart. The
-- events pricing does tell apart keep a row each, with where they were read (source_file,
-- line_number, item_index): rejected events (with their reason), late events (arrived after their
-- period's invoice was finalized), and the events of charges priced one by one (paid in advance, or
-- percentage with per-transaction bounds). A unique-count charge keeps one row per value.
-- Incremental on arrival days: a row depends on its own day only (what depends on earlier days,
-- first values and charge order, is decided by the marts that read it).
{{ config(materialized='incremental', **by_arrival_day()) }}

with duplicates as (
    select source_file, line_number, item_index from {{ ref('int_events_deduplicated') }}
    where is_duplicate and arrival_date >= {{ rebuild_from() }}
),

filter_keys as (select filter_keys from {{ ref('stg_catalog__filter_keys') }}),

first_arrivals as (
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
-- The row of an event's first charge is the one that counts the event itself (`is_first_charge`).
first_charges as (
    select plan_id, billable_metric_id, min(charge_id) as first_charge_id from charges group by plan_id, billable_metric_id
),

with_metric as {{ inline_cte() }} (
    select {{ star_except(['properties'], 'e') }}, m.billable_metric_id, m.aggregation_type, m.field_name, m.is_recurring,
        case when m.field_name is not null then {{ property('e.properties', 'm.field_name') }} end as field_value,
        {{ property_values('e.properties', 'k.filter_keys') }} as dimension_values
    from first_arrivals e
    cross join filter_keys k
    left join metrics m using (billable_metric_code)
),

-- (the join of every event with the rows of its subscription id, computed where it is read)
with_candidates as {{ inline_cte() }} (
    select e.*, s.subscription_id, s.plan_id, s.started_at
    from with_metric e
    left join subscriptions s
        on s.external_subscription_id = e.external_subscription_id
        -- (bounds without OR, so that DuckDB hashes on the id instead of a nested loop join)
        and coalesce(s.started_at, cast('0001-01-01' as timestamp)) <= e.event_at
        and e.event_at <= coalesce(s.terminated_at, cast('9999-12-31' as timestamp))
),

-- (ranking only the events of changed subscriptions: ranking every event would sort them all)
with_subscription as (
    select {{ star_except(['started_at']) }} from with_candidates
    where external_subscription_id not in (select external_subscription_id from changed_subscriptions)
    union all
    select {{ star_except(['started_at']) }} from with_candidates
    where external_subscription_id in (select external_subscription_id from changed_subscriptions)
    qualify row_number() over (partition by source_file, line_number, item_index order by started_at desc nulls last) = 1
),

with_period as (
    select e.*, p.billing_period_id, p.invoice_finalized_on, p.charges_from_at, p.charges_to_at
    from with_subscription e
    left join periods p
        on p.subscription_id = e.subscription_id
        and p.period_start_at <= e.event_at
        and e.event_at < p.period_end_at
),

-- The metric's value as a number, parsed once (null when it is not a decimal of at most 15 integer
-- digits, so that sums of millions of events still fit), for the aggregations that read a value.
numbered as (
    select *,
        case when aggregation_type in ('sum_agg', 'max_agg', 'latest_agg', 'weighted_sum_agg')
                  and {{ is_decimal_number('field_value') }}
                  and length(split_part(trim(leading '-' from field_value), '.', 1)) <= 15
             then {{ to_decimal('field_value') }} end as field_number
    from with_period
),

checked as (
    select
        e.*,
        case
            when e.billable_metric_id is null then 'unknown_metric_code'
            when k.external_subscription_id is null then 'unknown_subscription'
            when e.event_at >= {{ days_after('e.arrival_date', '1 + ' ~ var('future_tolerance_days')) }}
                then 'timestamp_in_future'
            when e.subscription_id is null or e.billing_period_id is null then 'timestamp_outside_subscription'
            when c.plan_id is null then 'metric_not_in_plan'
            when e.aggregation_type in ('sum_agg', 'max_agg', 'latest_agg', 'weighted_sum_agg') and e.field_number is null
                then 'invalid_field_value'
            when e.aggregation_type = 'unique_count_agg' and coalesce(e.field_value, '') = ''
                then 'invalid_field_value'
            -- Token counts and peaks cannot be negative: a negative sum or max is a client bug, not a
            -- refund (latest_agg clamps negatives to 0 and weighted sums may go down, as in Lago).
            when e.aggregation_type in ('sum_agg', 'max_agg') and e.field_number < 0
                then 'negative_field_value'
        end as rejection_reason
    from numbered e
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
            else field_number
        end as units
    from checked
),

-- Accepted events: one row per charge of their plan on their metric. Rejected events: one row, no
-- charge (the case keeps the join on equalities, a hash join).
charged as (
    select e.*, c.charge_id, coalesce(c.charge_id = f.first_charge_id, true) as is_first_charge,
        coalesce(c.is_pay_in_advance or c.charge_model = 'percentage', false) as is_charged_one_by_one
    from described e
    left join charges c
        on c.plan_id = case when e.rejection_reason is null then e.plan_id end
        and c.billable_metric_id = e.billable_metric_id
    left join first_charges f on f.plan_id = c.plan_id and f.billable_metric_id = c.billable_metric_id
),

-- What each event adds to its charge's units, where that depends on the event alone: its value
-- (sum_agg; count_agg and unique_count_agg: 1), or for weighted_sum_agg its value times the share of
-- the billed window (charges from/to) left after it. Unique counts are decided by the marts (values
-- seen on earlier days), max_agg and latest_agg keep their own aggregates.
contributed as (
    select
        *,
        rejection_reason is not null or coalesce(arrival_date > invoice_finalized_on, false) or is_charged_one_by_one
            as keeps_own_row,
        case
            when rejection_reason is not null then null
            when aggregation_type = 'weighted_sum_agg' then units
                * ({{ epoch_microseconds('charges_to_at') }} - {{ epoch_microseconds('event_at') }})::decimal(38, 12)
                / ({{ epoch_microseconds('charges_to_at') }} - {{ epoch_microseconds('charges_from_at') }})::decimal(38, 12)
            when aggregation_type in ('max_agg', 'latest_agg', 'unique_count_agg') then 0
            else units
        end::decimal(38, 12) as units_contribution
    from charged
),

-- One row per group of events that pricing cannot tell apart: grouped on what tells the rows apart
-- (arrival day, period, charge, dimensions, a unique count's value; for the events that keep their
-- own row, where they were read, which is null for the others), with what depends on those taken
-- once. One aggregation over the checked events, which are never held in memory as they are.
aggregated as (
    select
        arrival_date, billing_period_id, charge_id, dimension_values,
        case when aggregation_type = 'unique_count_agg' and rejection_reason is null then field_value end as field_value,
        any_value(subscription_id) as subscription_id,
        any_value(external_subscription_id) as external_subscription_id,
        any_value(invoice_finalized_on) as invoice_finalized_on,
        any_value(billable_metric_code) as billable_metric_code,
        any_value(aggregation_type) as aggregation_type,
        any_value(is_recurring) as is_recurring,
        any_value(is_first_charge) as is_first_charge,
        count(*) as events_count,
        sum(units_contribution)::decimal(38, 12) as units_contribution,
        sum(units)::decimal(38, 12) as value_sum,
        max(units)::decimal(38, 12) as max_value,
        -- the first event (unique counts: which row counts a value) and the last one (latest_agg), by
        -- timestamp, then where it was read (a struct compares field by field)
        min(case when aggregation_type = 'unique_count_agg' or keeps_own_row then
            {{ struct_of(['event_at', 'source_file', 'line_number', 'item_index']) }} end)
            as first_event,
        max({{ struct_of(['event_at', 'source_file', 'line_number', 'item_index']) }})
            as last_event,
        {{ value_at_max('units', struct_of(['event_at', 'source_file', 'line_number', 'item_index'])) }}::decimal(38, 12) as last_value,
        rejection_reason,
        case when keeps_own_row then source_file end as source_file,
        case when keeps_own_row then line_number end as line_number,
        case when keeps_own_row then item_index end as item_index,
        -- (the events that keep their own row: theirs)
        any_value(case when keeps_own_row then transaction_id end) as transaction_id,
        any_value(case when keeps_own_row then event_at end) as event_at,
        any_value(case when rejection_reason is not null then rejection_detail end) as rejection_detail,
        any_value(case when rejection_reason is not null then event_timestamp_text end) as event_timestamp_text
    from contributed
    group by arrival_date, billing_period_id, charge_id, dimension_values,
        case when aggregation_type = 'unique_count_agg' and rejection_reason is null then field_value end,
        rejection_reason,
        case when keeps_own_row then source_file end,
        case when keeps_own_row then line_number end,
        case when keeps_own_row then item_index end
),

-- The charge filter of each row: the most specific filter of its charge for its dimensions
-- (`charge_filters_by_dimensions`), matched once per charge and combination of dimensions.
combinations as (
    select distinct charge_id, dimension_values from aggregated where charge_id is not null
),

most_specific as (
    {{ charge_filters_by_dimensions('combinations') }}
)

select a.*, m.charge_filter_id
from aggregated a
left join most_specific m
    on m.charge_id = a.charge_id and m.dimension_values is not distinct from a.dimension_values
