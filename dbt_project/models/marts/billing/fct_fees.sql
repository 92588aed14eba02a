-- Fee lines of every invoice, with the names a customer sees.
with fees as (select * from {{ ref('stg_billing__fees') }}),
charges as (select * from {{ ref('stg_catalog__charges') }}),
filters as (select * from {{ ref('stg_catalog__charge_filters') }}),
invoices as (select * from {{ ref('stg_billing__invoices') }}),

final as (
    select
        f.fee_id, f.invoice_id, i.number as invoice_number, i.status as invoice_status, i.issuing_date,
        i.external_customer_id, i.external_subscription_id, f.fee_type, f.billing_period_id, f.charge_id,
        c.billable_metric_code, c.invoice_display_name as charge_display_name,
        case when f.charge_filter_key <> 'default' then f.charge_filter_key end as charge_filter_id,
        fl.invoice_display_name as filter_display_name,
        -- a filter over several models (or types) cannot credit one of them: '(multiple)'
        case when json_array_length(fl.filter_values_json, '$.model') = 1
             then json_extract_string(fl.filter_values_json, '$.model[0]')
             when json_array_length(fl.filter_values_json, '$.model') > 1 then '(multiple)' end as model,
        case when json_array_length(fl.filter_values_json, '$.type') = 1
             then json_extract_string(fl.filter_values_json, '$.type[0]')
             when json_array_length(fl.filter_values_json, '$.type') > 1 then '(multiple)' end as token_type,
        f.units, f.events_count, f.precise_amount, f.amount_cents, f.currency
    from fees f
    join invoices i using (invoice_id)
    left join charges c using (charge_id)
    left join filters fl on fl.charge_filter_id = f.charge_filter_key
)

select * from final
