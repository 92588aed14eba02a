-- Tokens per billing month (the month its billing period starts in), metric, model and token type,
-- against the month before. Every month between the first and the last one with usage has a row
-- for every (metric, model, type) ever used, 0 when unused.
with usage as (select * from {{ ref('fct_usage_by_model_and_type') }}),

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

final as (
    select *,
        lag(units) over (partition by billable_metric_code, model, token_type order by month) as previous_month_units,
        units - lag(units) over (partition by billable_metric_code, model, token_type order by month) as units_change,
        case when coalesce(lag(units) over (partition by billable_metric_code, model, token_type order by month), 0) = 0
             then null
             else round((units - lag(units) over (partition by billable_metric_code, model, token_type order by month))
                        / lag(units) over (partition by billable_metric_code, model, token_type order by month), 6)::decimal(18, 6)
        end as growth_rate
    from filled
)

select * from final
