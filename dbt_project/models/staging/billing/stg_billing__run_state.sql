-- billing.run_state (the date billed through), as the pricing step writes it: passed through.
select * from {{ source('billing', 'run_state') }}
