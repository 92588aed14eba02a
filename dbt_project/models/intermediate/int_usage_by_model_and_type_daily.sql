-- Tokens per subscription, billing period, charge, model, type and arrival day: the partial sums
-- `fct_usage_by_model_and_type` adds up, kept per arrival day so that a run recomputes only the
-- days it loaded. Added up from the one pass's rows. Incremental on arrival days.
{{ config(materialized='incremental', **by_arrival_day()) }}

with accepted as (
    select * from {{ ref('int_events_checked_daily') }}
    where rejection_reason is null and {{ in_rebuilt_days() }}
),

-- where `model` and `type` sit in each event's dimension values (null when no filter declares them)
key_positions as (
    select nullif({{ list_index_of('filter_keys', "'model'") }}, 0) as model_at, nullif({{ list_index_of('filter_keys', "'type'") }}, 0) as type_at
    from {{ ref('stg_catalog__filter_keys') }}
),

final as (
    select
        billing_period_id,
        charge_id,
        {{ list_item('dimension_values', 'k.model_at') }} as model,
        {{ list_item('dimension_values', 'k.type_at') }} as token_type,
        arrival_date,
        any_value(subscription_id) as subscription_id,
        any_value(external_subscription_id) as external_subscription_id,
        any_value(billable_metric_code) as billable_metric_code,
        sum(value_sum) as units,
        sum(events_count)::bigint as events_count,
        sum(value_sum) filter (where arrival_date > invoice_finalized_on) as late_units
    from accepted
    cross join key_positions k
    group by billing_period_id, charge_id, model, token_type, arrival_date
)

select f.billing_period_id, f.charge_id, f.model, f.token_type, f.arrival_date, f.subscription_id,
    f.external_subscription_id, s.external_customer_id, f.billable_metric_code, f.units, f.events_count, f.late_units
from final f
join {{ ref('stg_catalog__subscriptions') }} s using (subscription_id)
