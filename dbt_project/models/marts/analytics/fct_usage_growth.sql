-- Tokens per billing month (the month its billing period starts in), metric, model and token type,
-- against the month before. Every month between the first and the last one with usage has a row
-- for every (metric, model, type) ever used, 0 when unused. A month is complete when the billing
-- date (the latest `through` in billing.run_state) is on or after its last day, and it is not
-- before the month of the first arrival day loaded (its billing periods began before any event
-- was loaded: an anniversary period from Sep 15 holds only the October events of a landing folder
-- that starts on Oct 1). Growth is computed only between two complete months, so that part of a
-- month is never compared with a whole one.
with usage as (select * from {{ ref('fct_usage_by_model_and_type') }}),
run_state as (select * from {{ ref('stg_billing__run_state') }}),
loads as (select min(arrival_date) as data_from from {{ ref('fct_event_loads') }} where events_raw > 0),

monthly as (
    select date_trunc('month', period_start_date)::date as month, billable_metric_code,
        coalesce(model, '(none)') as model, coalesce(token_type, '(none)') as token_type,
        sum(units) as units, sum(events_count)::bigint as events_count,
        count(distinct external_customer_id)::bigint as customers_count
    from usage
    group by all
),

months as (
    select unnest(generate_series(min(month), max(month), interval 1 month))::date as month from monthly
),

keys as (select distinct billable_metric_code, model, token_type from monthly),

filled as (
    select m.month, k.billable_metric_code, k.model, k.token_type,
        coalesce(u.units, 0) as units, coalesce(u.events_count, 0)::bigint as events_count,
        coalesce(u.customers_count, 0)::bigint as customers_count
    from months m
    cross join keys k
    left join monthly u using (month, billable_metric_code, model, token_type)
),

compared as (
    select *,
        lag(units) over (partition by billable_metric_code, model, token_type order by month) as previous_month_units,
        coalesce(last_day(month) <= (select max(through) from run_state)
                 and date_trunc('month', (select data_from from loads)) <= month, false) as is_month_complete
    from filled
),

with_previous as (
    select *,
        lag(is_month_complete) over (partition by billable_metric_code, model, token_type order by month)
            as is_previous_month_complete
    from compared
),

final as (
    select
        month, billable_metric_code, model, token_type, units, events_count, customers_count, previous_month_units,
        case when is_month_complete and is_previous_month_complete then units - previous_month_units end as units_change,
        case when is_month_complete and is_previous_month_complete and previous_month_units <> 0
             then round((units - previous_month_units) / previous_month_units, 6)::decimal(18, 6)
        end as growth_rate,
        is_month_complete,
        is_previous_month_complete
    from with_previous
)

select * from final
