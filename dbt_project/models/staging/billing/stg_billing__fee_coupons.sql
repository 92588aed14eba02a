-- billing.fee_coupons as the pricing step writes it: each fee's exact share of each coupon that reduced it.
select * from {{ source('billing', 'fee_coupons') }}
