"""What the publisher reads: the fee lines mart (`marts.fct_fee_lines`), the priced tables (schema
`billing`), the catalog's names and parties, and the marts the run summary counts from."""

import datetime as dt

from dagster_project.store.periods import periods_with_plans
from dagster_project.store.tables import rows

# The tables the invoice and credit note documents are made from: each a declared dependency of
# the assets that publish them (`published_outputs`, `outputs/period_invoices`). Tables that are no
# asset of their own come with the asset that writes them: billing.customer_sequences,
# issued_credit_notes and finalized_invoices with billing/*.
DOCUMENT_READS = [
    ["marts", "fct_fee_lines"], ["marts", "fct_fee_groups"], ["billing", "invoices"], ["billing", "fee_taxes"], ["billing", "invoice_taxes"],
    ["billing", "credit_notes"], ["billing", "credit_note_items"], ["billing", "credit_note_taxes"],
    ["billing", "credit_note_applications"], ["billing", "coupon_credits"], ["billing", "fee_coupons"],
    ["catalog", "applied_coupons"], ["catalog", "customers"], ["calendar", "billing_periods"], ["catalog", "subscriptions"], ["catalog", "plans"],
    ["catalog", "billing_entities"], ["billing", "progressive_billing_credits"], ["billing", "applied_usage_thresholds"],
]
# And what current usage, wallets and the run summary read (raw.landing_files comes with raw/events,
# billing.run_state with billing/*).
READS = DOCUMENT_READS + [
    ["billing", "current_usage"], ["billing", "wallet_balances"], ["billing", "late_usage"],
    ["catalog", "charges"], ["catalog", "charge_filters"], ["catalog", "billable_metrics"], ["catalog", "wallets"],
    ["catalog", "wallet_rules"], ["billing", "wallet_transactions"],
    ["marts", "fct_event_loads"], ["marts", "fct_events_rejected"], ["marts", "fct_unpriced_usage"],
    ["raw", "events"],
]


def customers(con) -> dict[str, dict]:
    return {c["customer_id"]: c for c in rows(con, "select * from catalog.customers")}


def customer_sequences(con) -> dict[str, int]:
    return dict(con.execute("select customer_id, sequence from billing.customer_sequences").fetchall())


def billing_periods(con) -> dict[str, dict]:
    """Each billing period by id, with its subscription's plan (code, name, interval, amount)."""
    return {p["billing_period_id"]: p for p in periods_with_plans(con).to_dicts()}


def billing_entity(con) -> dict | None:
    """The seller, if the catalog has one."""
    return next(iter(rows(con, "select * from catalog.billing_entities")), None)


def fee_taxes(con) -> list[dict]:
    return rows(con, "select * from billing.fee_taxes order by fee_id, tax_code")


def fees(con) -> list[dict]:
    """Every fee with its charge's and filter's names and properties (`marts.fct_fee_lines`), by
    invoice in the order of the plan's charges and the charge's filters; fees of one charge and
    filter (a charge's fee and its minimum true-up) and fees of no charge (the plan's commitment
    true-up and subscription fee) by type, then id: the order the invoices were published in,
    which the engine's order of equal rows gave before it was written down here."""
    return rows(
        con,
        """select f.* exclude (charge_index, filter_index), g.grouped_by from marts.fct_fee_lines f
           left join marts.fct_fee_groups g using (fee_id)
           order by f.invoice_id, f.charge_index nulls first, f.filter_index nulls last, g.grouped_by nulls first,
               f.fee_type, f.fee_id""",
    )


def invoice_taxes(con) -> list[dict]:
    return rows(con, "select * from billing.invoice_taxes order by invoice_id, tax_code")


def credits_applied(con) -> list[dict]:
    """The credit notes' credit each invoice took, as recorded when the notes were issued (a
    finalized invoice keeps its credits when billed as of an earlier day)."""
    return rows(con, """select a.invoice_id, a.credit_note_id, a.amount_cents, n.number, i.number as invoice_number
                        from billing.credit_note_applications a
                        join billing.issued_credit_notes n using (credit_note_id)
                        join billing.finalized_invoices i on i.invoice_id = n.invoice_id
                        order by a.invoice_id, n.issuing_date, n.number""")


def coupon_credits(con) -> list[dict]:
    """What each coupon took off each invoice, in the order the coupons applied (an invoice finalized
    before keeps its credits as stored), with the coupon's id and name."""
    return rows(con, """select c.*, a.coupon_id, a.coupon_name as catalog_coupon_name
                        from billing.coupon_credits c
                        left join catalog.applied_coupons a using (applied_coupon_id)
                        order by c.invoice_id, c.credit_order""")


def fee_coupon_amounts(con) -> dict[str, object]:
    """Each fee of an invoice with coupons: its exact share of them (0 for a fee they do not reduce)."""
    return dict(con.execute(
        """select f.fee_id, coalesce(sum(s.precise_amount_cents), 0) from marts.fct_fee_lines f
           left join billing.fee_coupons s using (fee_id)
           where f.invoice_id in (select invoice_id from billing.coupon_credits) group by f.fee_id""").fetchall())


def progressive_credits(con) -> list[dict]:
    """What each invoice deducted of the period's previous progressive_billing invoice (one row per
    invoice), with that invoice's number."""
    return rows(con, """select c.invoice_id, c.progressive_billing_invoice_id, sum(c.amount_cents)::bigint as amount_cents,
                               i.number as progressive_billing_invoice_number
                        from billing.progressive_billing_credits c
                        join billing.invoices i on i.invoice_id = c.progressive_billing_invoice_id
                        group by all order by c.invoice_id""")


def progressive_fee_credits(con) -> dict[str, int]:
    """Each fee's share of its invoice's progressive-billing credit."""
    return dict(con.execute("select fee_id, sum(amount_cents)::bigint from billing.progressive_billing_credits "
                            "group by fee_id").fetchall())


def applied_usage_thresholds(con) -> list[dict]:
    """The usage thresholds each progressive_billing invoice applied, in order."""
    return rows(con, "select * from billing.applied_usage_thresholds order by invoice_id, threshold_order")


def invoices(con) -> list[dict]:
    return rows(con, "select * from billing.invoices order by number")


def credit_note_items(con) -> list[dict]:
    return rows(con, "select * from billing.credit_note_items order by credit_note_id, fee_id")


def credit_note_taxes(con) -> list[dict]:
    return rows(con, "select * from billing.credit_note_taxes order by credit_note_id, tax_code")


def credit_notes(con) -> list[dict]:
    return rows(con, "select * from billing.credit_notes order by number")


def current_usage(con) -> list[dict]:
    """The buckets of the open periods, with their metric's aggregation and filter values, in one
    order (a period's buckets are digested as read: `publish.unchanged`)."""
    return rows(
        con,
        """select u.*, m.aggregation_type, cf.filter_values_json from billing.current_usage u
           join catalog.charges c using (charge_id)
           join catalog.billable_metrics m on m.billable_metric_id = c.billable_metric_id
           left join catalog.charge_filters cf on cf.charge_filter_id = u.charge_filter_key
           order by u.billing_period_id, u.charge_id, u.charge_filter_key, u.grouped_by""",
    )


def billed_through(con) -> dt.date:
    """The billing date of the last pricing run."""
    return con.execute("select through from billing.run_state").fetchone()[0]


def wallet_balances(con) -> dict[str, dict]:
    return {b["wallet_id"]: b for b in rows(con, "select * from billing.wallet_balances")}


def wallets(con) -> list[dict]:
    return rows(con, "select * from catalog.wallets order by creation_order")


def wallet_rules(con) -> dict[str, list[dict]]:
    """Each wallet's recurring top-up rules, in the order written."""
    rules: dict[str, list[dict]] = {}
    for rule in rows(con, "select * from catalog.wallet_rules order by wallet_id, rule_index"):
        rules.setdefault(rule["wallet_id"], []).append(rule)
    return rules


def wallet_transactions(con) -> dict[str, list[dict]]:
    """Each wallet's ledger (`billing.wallet_transactions`), in the order it happened."""
    ledgers: dict[str, list[dict]] = {}
    for row in rows(con, "select * from billing.wallet_transactions order by wallet_id, sequence"):
        ledgers.setdefault(row["wallet_id"], []).append(row)
    return ledgers


def event_totals(con, through: dt.date) -> dict[str, int]:
    """Events of the arrival days up to `through`: raw, accepted, duplicate, rejected, late."""
    loads = con.execute(
        """select coalesce(sum(events_raw), 0), coalesce(sum(events_accepted), 0), coalesce(sum(events_duplicate), 0),
                  coalesce(sum(events_rejected), 0), coalesce(sum(events_late), 0)
           from marts.fct_event_loads where arrival_date <= ?""",
        [through],
    ).fetchone()
    return dict(zip(("events_raw", "events_accepted", "events_duplicate", "events_rejected", "events_late"),
                    (int(n) for n in loads), strict=True))


def rejected_by_reason(con) -> dict[str, int]:
    return dict(con.execute(
        "select rejection_reason, count(*) from marts.fct_events_rejected group by 1 order by 1"
    ).fetchall())


def unpriced_usage(con, through: dt.date) -> list[dict]:
    return rows(con, "select * from marts.fct_unpriced_usage where arrival_date <= ? order by all", [through])


def landing_files(con, status: str, through: dt.date) -> int:
    """Landing files of the arrival days up to `through` with this status (`raw.landing_files`)."""
    return int(con.execute(
        "select count(*) from raw.landing_files where status = ? and arrival_date <= ?", [status, through]
    ).fetchone()[0])


def late_amount_cents(con) -> int:
    return int(con.execute("select coalesce(sum(late_amount_cents), 0) from billing.late_usage").fetchone()[0])
