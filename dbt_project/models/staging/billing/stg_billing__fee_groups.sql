-- billing.fee_groups as the pricing step writes it: already typed and named (billing/invoicing.py), so passed through.
select * from {{ source('billing', 'fee_groups') }}
