-- Every first-arrival event, checked (`int_events_validated`): accepted events matched to the
-- charges of their plan and to the most specific charge filter, rejected events once, with their
-- reason and no charge. The one event-level table after deduplication: each event is written once.
-- Its filter is the most specific one for its charge and dimensions
-- (`int_charge_filters_by_dimensions`); an event that matches no filter stays in the charge's
-- default bucket (null filter).
-- Incremental on arrival days: each event is checked and matched on its own.
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_rebuilt_days() }}") }}

with checked as (
    -- (the days being rebuilt only: the ephemeral model filters on them itself). Read once, by
    -- `final`: a second reader would make DuckDB materialize every checked event (spilling).
    select * from {{ ref('int_events_validated') }}
),

charges as (select * from {{ ref('stg_catalog__charges') }}),
-- (its own small table, so that DuckDB sizes the joins right: inside this query it guessed the
-- few signatures larger than the events, and hashed the events)
most_specific as (select * from {{ ref('int_charge_filters_by_dimensions') }}),

-- Every accepted event has at least one charge (else it is rejected as metric_not_in_plan); the
-- row of its first charge is the one that counts the event itself (`is_first_charge`).
first_charges as (
    select plan_id, billable_metric_id, min(charge_id) as first_charge_id from charges group by plan_id, billable_metric_id
),

final as (
    -- accepted events: one row per charge of their plan on their metric, with the filter matched;
    -- rejected events: one row, no charge (the case keeps the join on equalities, a hash join)
    -- (without the attributes of the subscription or the metric alone: each column costs its write
    -- for every event, about 1.4 s per 20M; the marts join them in where needed, after aggregating)
    select e.* exclude (plan_id, customer_id, external_customer_id, aggregation_type, field_name),
        c.charge_id, m.charge_filter_id, coalesce(c.charge_id = f.first_charge_id, true) as is_first_charge
    from checked e
    left join charges c
        on c.plan_id = case when e.rejection_reason is null then e.plan_id end
        and c.billable_metric_id = e.billable_metric_id
    left join first_charges f on f.plan_id = c.plan_id and f.billable_metric_id = c.billable_metric_id
    left join most_specific m
        on m.charge_id = c.charge_id and m.dimension_values is not distinct from e.dimension_values
)

select * from final
