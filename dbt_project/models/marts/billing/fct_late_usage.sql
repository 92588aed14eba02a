-- Usage that arrived after its period's invoice was finalized, with the amount it would have added.
with late as (select * from {{ ref('stg_billing__late_usage') }}),

final as (
    select billing_period_id, charge_id,
        case when charge_filter_key <> 'default' then charge_filter_key end as charge_filter_id,
        late_units, late_events_count, late_amount_cents
    from late
)

select * from final
