-- Credit notes: corrections of finalized invoices (Lago's credit notes), with their credit and refund
-- parts and what is left of the credit as of the billing date. The invoices they correct never change;
-- their credit lowers the customer's later invoices (`fct_invoices.credit_notes_amount_cents`).
with notes as (select * from {{ ref('stg_billing__credit_notes') }}),

final as (
    select
        credit_note_id, number, sequential_id, invoice_id, invoice_number, external_customer_id, issuing_date,
        reason, description, currency, sub_total_excluding_taxes_amount_cents, taxes_amount_cents,
        total_amount_cents, credit_amount_cents, refund_amount_cents, balance_amount_cents,
        consumed_amount_cents, voided_amount_cents, credit_status, refund_status, voided_on, as_of
    from notes
)

select * from final
