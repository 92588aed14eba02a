-- Fee lines of every invoice, with the names a customer sees.
with fee_lines as (select * from {{ ref('fct_fee_lines') }}),
invoices as (select * from {{ ref('stg_billing__invoices') }}),

final as (
    select
        f.fee_id, f.invoice_id, i.number as invoice_number, i.status as invoice_status, i.issuing_date,
        i.external_customer_id, i.external_subscription_id, f.fee_type, f.billing_period_id, f.charge_id,
        f.billable_metric_code, f.charge_display_name,
        case when f.charge_filter_key <> 'default' then f.charge_filter_key end as charge_filter_id,
        f.filter_display_name,
        -- a filter over several models (or types) cannot credit one of them: '(multiple)'
        case when json_array_length(f.filter_values_json, '$.model') = 1
             then json_extract_string(f.filter_values_json, '$.model[0]')
             when json_array_length(f.filter_values_json, '$.model') > 1 then '(multiple)' end as model,
        case when json_array_length(f.filter_values_json, '$.type') = 1
             then json_extract_string(f.filter_values_json, '$.type[0]')
             when json_array_length(f.filter_values_json, '$.type') > 1 then '(multiple)' end as token_type,
        f.units, f.events_count, f.precise_amount, f.amount_cents, f.currency
    from fee_lines f
    join invoices i using (invoice_id)
)

select * from final
