-- Every fee as invoices, documents and credit notes show it: the priced fee with its charge's and
-- filter's names and pricing properties (a filter's own, else its charge's). The one place fees
-- meet the catalog: fct_fees reads it, and so does the publisher.
with fees as (select * from {{ ref('stg_billing__fees') }}),
charges as (select * from {{ ref('stg_catalog__charges') }}),
filters as (select * from {{ ref('stg_catalog__charge_filters') }}),

final as (
    select
        f.*,
        c.billable_metric_code, c.invoice_display_name as charge_display_name, c.charge_model, c.charge_index,
        fl.invoice_display_name as filter_display_name, fl.filter_values_json, fl.filter_index,
        coalesce(fl.properties_json, c.properties_json) as properties_json
    from fees f
    left join charges c using (charge_id)
    left join filters fl on fl.charge_filter_id = f.charge_filter_key
)

select * from final
