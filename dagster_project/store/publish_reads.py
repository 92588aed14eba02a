"""What the publisher reads: the fee lines mart (`marts.fct_fee_lines`), the priced tables (schema
`billing`), the catalog's names and parties, and the marts the run summary counts from."""

import datetime as dt

import polars as pl

from dagster_project.store.periods import PERIODS_WITH_PLANS
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


def only(con, name: str, keys) -> str:
    """A temporary table of `keys` (column `key`), named for `name`: the reads given it as `only`
    read the rows of those groups alone (the groups whose digest changed, `publish.unchanged`)."""
    table = f"_publish_only_{name}"
    con.register("_keys", pl.DataFrame({"key": sorted(keys)}, schema={"key": pl.String}).to_arrow())
    con.execute(f"create or replace temp table {table} as select key from _keys")
    con.unregister("_keys")
    return table


def _in(column: str, only: str | None) -> str:
    """` and <column> in <only>`, or nothing: every row."""
    return f" and {column} in (select key from {only})" if only else ""


def customers(con, invoices: str | None = None, notes: str | None = None) -> dict[str, dict]:
    """The customers (all; with `invoices` and `notes`: those of these invoices and credit notes)."""
    where = "" if invoices is None else (
        f"where customer_id in (select customer_id from billing.invoices where true{_in('invoice_id', invoices)}) "
        f"or customer_id in (select customer_id from billing.credit_notes where true{_in('credit_note_id', notes)})")
    return {c["customer_id"]: c for c in rows(con, f"select * from catalog.customers {where}")}


def customer_sequences(con) -> dict[str, int]:
    return dict(con.execute("select customer_id, sequence from billing.customer_sequences").fetchall())


def billing_periods(con, invoices: str | None = None, periods: str | None = None) -> dict[str, dict]:
    """Each billing period by id, with its subscription's plan (code, name, interval, amount): all;
    with `invoices` and `periods`, those of these invoices and their fees, and these periods."""
    where = "" if invoices is None else (
        f"where billing_period_id in (select key from {periods}) or billing_period_id in "
        f"(select billing_period_id from billing.invoices where true{_in('invoice_id', invoices)}) or billing_period_id in "
        f"(select billing_period_id from marts.fct_fee_lines where true{_in('invoice_id', invoices)})")
    return {p["billing_period_id"]: p for p in con.execute(f"select * from ({PERIODS_WITH_PLANS}) {where}").pl().to_dicts()}


def billing_entity(con) -> dict | None:
    """The seller, if the catalog has one."""
    return next(iter(rows(con, "select * from catalog.billing_entities")), None)


# `only` below: the name of a table made by `only()`, reading the rows of those invoices (credit
# notes, periods, wallets) alone; None: every row.
def _of_invoices(only: str | None) -> str:
    """` and fee_id in <the fees of these invoices>`, or nothing."""
    return f" and fee_id in (select fee_id from marts.fct_fee_lines where true{_in('invoice_id', only)})" if only else ""


def fee_taxes(con, only: str | None = None) -> list[dict]:
    return rows(con, f"select * from billing.fee_taxes where true{_of_invoices(only)} order by fee_id, tax_code")


def fees(con, only: str | None = None) -> list[dict]:
    """Every fee with its charge's and filter's names and properties (`marts.fct_fee_lines`), by
    invoice in the order of the plan's charges and the charge's filters; fees of one charge and
    filter (a charge's fee and its minimum true-up) and fees of no charge (the plan's commitment
    true-up and subscription fee) by type, then id: the order the invoices were published in,
    which the engine's order of equal rows gave before it was written down here."""
    return rows(
        con,
        f"""select f.* exclude (charge_index, filter_index), g.grouped_by from marts.fct_fee_lines f
           left join marts.fct_fee_groups g using (fee_id) where true{_in('f.invoice_id', only)}
           order by f.invoice_id, f.charge_index nulls first, f.filter_index nulls last, g.grouped_by nulls first,
               f.fee_type, f.fee_id""",
    )


def invoice_taxes(con, only: str | None = None) -> list[dict]:
    return rows(con, f"select * from billing.invoice_taxes where true{_in('invoice_id', only)} order by invoice_id, tax_code")


CREDITS_APPLIED = """select a.invoice_id, a.credit_note_id, a.amount_cents, n.number, i.number as invoice_number
                     from billing.credit_note_applications a
                     join billing.issued_credit_notes n using (credit_note_id)
                     join billing.finalized_invoices i on i.invoice_id = n.invoice_id"""


def credits_applied(con, only: str | None = None) -> list[dict]:
    """The credit notes' credit each invoice took, as recorded when the notes were issued (a
    finalized invoice keeps its credits when billed as of an earlier day)."""
    return rows(con, f"{CREDITS_APPLIED} where true{_in('a.invoice_id', only)} order by a.invoice_id, n.issuing_date, n.number")


COUPON_CREDITS = """select c.*, a.coupon_id, a.coupon_name as catalog_coupon_name
                    from billing.coupon_credits c
                    left join catalog.applied_coupons a using (applied_coupon_id)"""


def coupon_credits(con, only: str | None = None) -> list[dict]:
    """What each coupon took off each invoice, in the order the coupons applied (an invoice finalized
    before keeps its credits as stored), with the coupon's id and name."""
    return rows(con, f"{COUPON_CREDITS} where true{_in('c.invoice_id', only)} order by c.invoice_id, c.credit_order")


def fee_coupon_amounts(con, only: str | None = None) -> dict[str, object]:
    """Each fee of an invoice with coupons: its exact share of them (0 for a fee they do not reduce)."""
    return dict(con.execute(
        f"""select f.fee_id, coalesce(sum(s.precise_amount_cents), 0) from marts.fct_fee_lines f
           left join billing.fee_coupons s using (fee_id)
           where f.invoice_id in (select invoice_id from billing.coupon_credits){_in('f.invoice_id', only)}
           group by f.fee_id""").fetchall())


PROGRESSIVE_CREDITS = """select c.invoice_id, c.progressive_billing_invoice_id, sum(c.amount_cents)::bigint as amount_cents,
                                i.number as progressive_billing_invoice_number
                         from billing.progressive_billing_credits c
                         join billing.invoices i on i.invoice_id = c.progressive_billing_invoice_id"""


def progressive_credits(con, only: str | None = None) -> list[dict]:
    """What each invoice deducted of the period's previous progressive_billing invoice (one row per
    invoice), with that invoice's number."""
    return rows(con, f"{PROGRESSIVE_CREDITS} where true{_in('c.invoice_id', only)} group by all order by c.invoice_id")


def progressive_fee_credits(con, only: str | None = None) -> dict[str, int]:
    """Each fee's share of its invoice's progressive-billing credit."""
    return dict(con.execute(f"select fee_id, sum(amount_cents)::bigint from billing.progressive_billing_credits "
                            f"where true{_of_invoices(only)} group by fee_id").fetchall())


def applied_usage_thresholds(con, only: str | None = None) -> list[dict]:
    """The usage thresholds each progressive_billing invoice applied, in order."""
    return rows(con, f"select * from billing.applied_usage_thresholds where true{_in('invoice_id', only)} "
                     "order by invoice_id, threshold_order")


def invoices(con, only: str | None = None) -> list[dict]:
    return rows(con, f"select * from billing.invoices where true{_in('invoice_id', only)} order by number")


def invoice_totals(con) -> dict[str, int]:
    """What the run summary counts of the invoices and credit notes: finalized invoices and their
    total, drafts, credit notes."""
    finalized, total, drafts = con.execute(
        """select count(*) filter (where status = 'finalized'),
                  coalesce(sum(total_amount_cents) filter (where status = 'finalized'), 0)::bigint,
                  count(*) filter (where status = 'draft') from billing.invoices""").fetchone()
    notes = con.execute("select count(*) from billing.credit_notes").fetchone()[0]
    return {"invoices_finalized": finalized, "invoiced_total_amount_cents": total, "invoices_draft": drafts,
            "credit_notes": notes}


def credited_invoices(con, notes: str) -> set[str]:
    """The invoices of these credit notes (`only`) and of their items' fees: what they are built with."""
    return {k for (k,) in con.execute(
        f"""select invoice_id from billing.credit_notes where credit_note_id in (select key from {notes})
            union select l.invoice_id from billing.credit_note_items i join marts.fct_fee_lines l using (fee_id)
            where i.credit_note_id in (select key from {notes})""").fetchall()}


def credit_note_items(con, only: str | None = None) -> list[dict]:
    return rows(con, f"select * from billing.credit_note_items where true{_in('credit_note_id', only)} "
                     "order by credit_note_id, fee_id")


def credit_note_taxes(con, only: str | None = None) -> list[dict]:
    return rows(con, f"select * from billing.credit_note_taxes where true{_in('credit_note_id', only)} "
                     "order by credit_note_id, tax_code")


def credit_notes(con, only: str | None = None) -> list[dict]:
    return rows(con, f"select * from billing.credit_notes where true{_in('credit_note_id', only)} order by number")


CURRENT_USAGE = """select u.*, m.aggregation_type, cf.filter_values_json from billing.current_usage u
                   join catalog.charges c using (charge_id)
                   join catalog.billable_metrics m on m.billable_metric_id = c.billable_metric_id
                   left join catalog.charge_filters cf on cf.charge_filter_id = u.charge_filter_key"""


def current_usage(con, only: str | None = None) -> list[dict]:
    """The buckets of the open periods, with their metric's aggregation and filter values, in one
    order."""
    return rows(con, f"{CURRENT_USAGE} where true{_in('u.billing_period_id', only)} "
                     "order by u.billing_period_id, u.charge_id, u.charge_filter_key, u.grouped_by")


def billed_through(con) -> dt.date:
    """The billing date of the last pricing run."""
    return con.execute("select through from billing.run_state").fetchone()[0]


def wallet_balances(con, only: str | None = None) -> dict[str, dict]:
    return {b["wallet_id"]: b for b in rows(con, f"select * from billing.wallet_balances where true{_in('wallet_id', only)}")}


def wallets(con, only: str | None = None) -> list[dict]:
    return rows(con, f"select * from catalog.wallets where true{_in('wallet_id', only)} order by creation_order")


def wallet_rules(con, only: str | None = None) -> dict[str, list[dict]]:
    """Each wallet's recurring top-up rules, in the order written."""
    rules: dict[str, list[dict]] = {}
    for rule in rows(con, f"select * from catalog.wallet_rules where true{_in('wallet_id', only)} order by wallet_id, rule_index"):
        rules.setdefault(rule["wallet_id"], []).append(rule)
    return rules


def wallet_transactions(con, only: str | None = None) -> dict[str, list[dict]]:
    """Each wallet's ledger (`billing.wallet_transactions`), in the order it happened."""
    ledgers: dict[str, list[dict]] = {}
    for row in rows(con, f"select * from billing.wallet_transactions where true{_in('wallet_id', only)} "
                         "order by wallet_id, sequence"):
        ledgers.setdefault(row["wallet_id"], []).append(row)
    return ledgers


# What each group of published files is made from, digested in the warehouse (`group_digests`):
# per group, the rows of every table its files are built from (the reads above), each part a query
# of `k` (the group's key) and `r` (a row as a struct). A part may take in more than its builder
# reads (the whole row, a table read for a fee or a customer): that only builds a file again when
# something else changed, never leaves one stale.
_FEE_INVOICE = "join marts.fct_fee_lines l using (fee_id)"
INVOICE_PARTS = [
    "select i.invoice_id as k, i as r from billing.invoices i",
    "select q.invoice_id as k, q as r from (select f.*, g.grouped_by from marts.fct_fee_lines f "
    "left join marts.fct_fee_groups g using (fee_id)) q",
    f"select l.invoice_id as k, t as r from billing.fee_taxes t {_FEE_INVOICE}",
    f"select l.invoice_id as k, s as r from billing.fee_coupons s {_FEE_INVOICE}",
    f"select l.invoice_id as k, c as r from billing.progressive_billing_credits c {_FEE_INVOICE}",
    f"select q.invoice_id as k, q as r from ({PROGRESSIVE_CREDITS} group by all) q",
    f"select l.invoice_id as k, p as r from marts.fct_fee_lines l join ({PERIODS_WITH_PLANS}) p using (billing_period_id)",
    f"select i.invoice_id as k, p as r from billing.invoices i join ({PERIODS_WITH_PLANS}) p using (billing_period_id)",
    "select i.invoice_id as k, c as r from billing.invoices i join catalog.customers c using (customer_id)",
    "select i.invoice_id as k, s as r from billing.invoices i join billing.customer_sequences s using (customer_id)",
    "select i.invoice_id as k, e as r from billing.invoices i cross join catalog.billing_entities e",
    "select t.invoice_id as k, t as r from billing.invoice_taxes t",
    f"select q.invoice_id as k, q as r from ({CREDITS_APPLIED}) q",
    f"select q.invoice_id as k, q as r from ({COUPON_CREDITS}) q",
    "select t.invoice_id as k, t as r from billing.applied_usage_thresholds t",
]
# A credit note: its rows, and the digests of the invoice it credits and of the invoices of its
# items' fees (`_publish_invoice_digests`, made by `group_digests` of the invoices first).
CREDIT_NOTE_PARTS = [
    "select n.credit_note_id as k, n as r from billing.credit_notes n",
    "select i.credit_note_id as k, i as r from billing.credit_note_items i",
    "select t.credit_note_id as k, t as r from billing.credit_note_taxes t",
    "select n.credit_note_id as k, d.inputs as r from billing.credit_notes n join _publish_invoice_digests d using (invoice_id)",
    "select i.credit_note_id as k, d.inputs as r from billing.credit_note_items i join marts.fct_fee_lines l using (fee_id) "
    "join _publish_invoice_digests d on d.invoice_id = l.invoice_id",
    "select n.credit_note_id as k, c as r from billing.credit_notes n join catalog.customers c using (customer_id)",
    "select n.credit_note_id as k, s as r from billing.credit_notes n join billing.customer_sequences s using (customer_id)",
    "select n.credit_note_id as k, e as r from billing.credit_notes n cross join catalog.billing_entities e",
]
# A wallet's file (the wallet, its rules and balance) and its ledger's (the wallet and its
# transactions): two groups, so that a day that changes a balance and no transaction builds no ledger.
WALLET_PARTS = [
    "select w.wallet_id as k, w as r from catalog.wallets w",
    "select x.wallet_id as k, x as r from catalog.wallet_rules x",
    "select b.wallet_id as k, b as r from billing.wallet_balances b",
]
LEDGER_PARTS = [
    "select w.wallet_id as k, w as r from catalog.wallets w",
    "select t.wallet_id as k, t as r from billing.wallet_transactions t",
]


def _open_periods(through: dt.date) -> str:
    """The periods open on `through` (started, not yet billed): those with a current-usage file."""
    return (f"select * from ({PERIODS_WITH_PLANS}) where period_start_date <= date '{through.isoformat()}' "
            f"and date '{through.isoformat()}' < billing_day")


def current_usage_parts(through: dt.date) -> list[str]:
    return [f"select p.billing_period_id as k, p as r from ({_open_periods(through)}) p",
            f"select q.billing_period_id as k, q as r from ({CURRENT_USAGE}) q"]  # (of open periods only: `group_digests` joins)


def group_digests(con, base: str, parts: list[str], table: str | None = None) -> list[dict]:
    """Each group of `base` (a query of `k`, the group's key, and the columns naming its files) with
    `inputs`: the MD5 of each part's rows as JSON (exact: decimals and times as their text), sorted
    (so no order of the engine's counts), one after the other. `table`: kept as a temporary table
    of `k` and `inputs` too."""
    ctes = ", ".join(
        f"p{i} as (select k, md5(string_agg(j, chr(10) order by j)) as d "
        f"from (select k, to_json(r)::varchar as j from ({part})) group by k)" for i, part in enumerate(parts))
    joins = " ".join(f"left join p{i} on p{i}.k = b.k" for i in range(len(parts)))
    inputs = ", ".join(f"coalesce(p{i}.d, '-')" for i in range(len(parts)))
    query = f"with {ctes} select b.*, concat_ws(' ', {inputs}) as inputs from ({base}) b {joins} order by b.k"
    if table:
        con.execute(f"create or replace temp table {table} as {query}")
        return rows(con, f"select * from {table} order by k")
    return rows(con, query)


def invoice_digests(con) -> list[dict]:
    """Each invoice (`k`: its id; `number`, `status`) and the digest of what its files are made of."""
    return group_digests(con, "select invoice_id as k, invoice_id, number, status from billing.invoices", INVOICE_PARTS,
                         "_publish_invoice_digests")


def credit_note_digests(con) -> list[dict]:
    """Each credit note (`k`: its id; `number`, `invoice_id`) and the digest of what its files are made of
    (after `invoice_digests`)."""
    return group_digests(con, "select credit_note_id as k, number, invoice_id from billing.credit_notes", CREDIT_NOTE_PARTS)


def current_usage_digests(con, through: dt.date) -> list[dict]:
    """Each period open on `through` (`k`: its id; `external_subscription_id`) and the digest of its
    current usage's inputs."""
    return group_digests(con, f"select billing_period_id as k, external_subscription_id from ({_open_periods(through)})",
                         current_usage_parts(through))


def wallet_digests(con) -> list[dict]:
    """Each wallet (`k`: its id) and the digest of its file's inputs."""
    return group_digests(con, "select wallet_id as k from catalog.wallets", WALLET_PARTS)


def ledger_digests(con) -> list[dict]:
    """Each wallet (`k`: its id) and the digest of its ledger file's inputs."""
    return group_digests(con, "select wallet_id as k from catalog.wallets", LEDGER_PARTS)


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
    """`marts.fct_unpriced_usage` through `through`, summed per subscription, metric and filter
    values (exact decimal sums: `unpriced.summary_entries` sums what it is given the same way)."""
    return rows(con, """select external_subscription_id, billable_metric_code, filter_values_json,
                              sum(units) as units, sum(events_count)::bigint as events_count
                       from marts.fct_unpriced_usage where arrival_date <= ? group by all order by all""", [through])


def landing_files(con, status: str, through: dt.date) -> int:
    """Landing files of the arrival days up to `through` with this status (`raw.landing_files`)."""
    return int(con.execute(
        "select count(*) from raw.landing_files where status = ? and arrival_date <= ?", [status, through]
    ).fetchone()[0])


def late_amount_cents(con) -> int:
    return int(con.execute("select coalesce(sum(late_amount_cents), 0) from billing.late_usage").fetchone()[0])
