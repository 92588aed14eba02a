-- Each fee's share of its invoice's coupons, in whole cents, for the marts that count revenue after
-- coupons. The exact shares (Lago's `precise_coupons_amount_cents`: a coupon's credit spread over
-- the fees it reduces, in proportion to their amounts) are rounded down, and the cents left over are
-- given one each to the fees with the largest remainders (ties by fee id), so that an invoice's
-- fees take exactly its `coupons_amount_cents`. One row per fee that a coupon reduced.
with shares as (
    select invoice_id, fee_id, sum(precise_amount_cents) as precise_coupons_amount_cents
    from {{ ref('stg_billing__fee_coupons') }}
    group by all
),
invoices as (select invoice_id, coupons_amount_cents from {{ ref('stg_billing__invoices') }}),

floored as (
    select *, floor(precise_coupons_amount_cents)::bigint as whole_cents,
        precise_coupons_amount_cents - floor(precise_coupons_amount_cents) as remainder
    from shares
),

ranked as (
    select f.*,
        i.coupons_amount_cents - sum(f.whole_cents) over (partition by f.invoice_id) as cents_left,
        row_number() over (partition by f.invoice_id order by f.remainder desc, f.fee_id) as remainder_rank
    from floored f
    join invoices i using (invoice_id)
),

final as (
    select invoice_id, fee_id, precise_coupons_amount_cents,
        (whole_cents + case when remainder_rank <= cents_left then 1 else 0 end)::bigint as coupons_amount_cents
    from ranked
)

select * from final
