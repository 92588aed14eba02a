-- The fee lines of the buckets priced per group (`pricing_group_keys`), with their group: Lago's
-- fee `grouped_by` ({key: value}, a null value for events without the key). Beside fct_fees (which
-- has one row per fee, grouped or not) rather than in it, so that fct_fees keeps its columns.
with fee_groups as (select * from {{ ref('stg_billing__fee_groups') }}),
fees as (select * from {{ ref('fct_fees') }}),

final as (
    select
        g.fee_id, g.invoice_id, f.invoice_number, f.invoice_status, f.external_subscription_id, f.charge_id,
        f.billable_metric_code, f.charge_filter_id, g.grouped_by, f.units, f.events_count, f.amount_cents, f.currency
    from fee_groups g
    join fees f using (fee_id)
)

select * from final
