"""Wallets, top-ups, manual transactions and a payments file (tests/scenarios/wallets), billed
through 2026-11-03. UTC customers in USD on a plan of 1.00 per started million tokens, no
subscription fee; 1 credit = 1 USD. October invoices are issued on Nov 1 and paid from wallets on
Nov 2. Every figure by hand:

- threshold_co: 10 paid credits, rule "ongoing balance <= 5: buy 20". Oct 5: 6M tokens, ongoing
  10 - 6 = 4: the rule fires once (credit invoice of 20.00). Oct 6: 2M more, ongoing 30 - 8 = 22:
  it does not fire again. Nov 2: the 8.00 invoice is paid from the wallet: 22.00 left.
- target_co: 10 paid credits, rule "<= 5: top up to an ongoing balance of 50". Oct 5: 6M tokens,
  ongoing 4: 46 credits bought (4,600), ongoing exactly 50. Nov 2: 6.00 paid, 50.00 left.
- interval_co: 10 granted credits, a monthly rule buying 15 credits, with
  invoice_requires_successful_payment. Nov 1 (a month after Oct 1): credit invoice MTH-002-001 for
  15.00, pending. The payments file records 15.00 for it on Nov 2 (Stripe EU): settled on Nov 2,
  before that day's invoice payment. The 12.00 invoice takes the 10 granted then 2 paid: 0 due;
  13.00 left.
- priority_co: wallet "main" (priority 2, 20 paid) is older than "promo" (priority 1, 5 granted);
  a manual wallet_transaction adds 10 paid credits to main on Oct 15 (credit invoice MTH-003-002).
  The 12.00 invoice takes promo's 5.00 first, then 7.00 from main: 23.00 left.
- expiry_co: 50 granted credits, 20 voided by a manual transaction on Oct 10, the wallet expires on
  Oct 20: its 3.00 invoice takes no credit. Stripe US pays 3.00 on Nov 3: `succeeded`.
- The payments file also has a duplicate row (line 4), a payment for an invoice that does not
  exist (MTH-009-001) and an amount that is not a number (line 6).

Customer numbers follow external ids: expiry_co 001, interval_co 002, priority_co 003,
target_co 004, threshold_co 005.
"""

import json
import shutil

import duckdb
import pytest

from tests.conftest import OPENAPI, REPO, assert_lago_schemas, run_meterhouse

SCENARIO = REPO / "tests" / "scenarios" / "wallets"


@pytest.fixture(scope="module")
def work(wallets_billed):
    """The scenario billed through 2026-11-03 with its payments file (one run, shared with test_analytics)."""
    return wallets_billed


def _query(work, sql):
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_invoices_credits_applied_and_payment_status(work):
    got = []
    for path in sorted((work / "out" / "invoices").glob("*.json")):
        d = json.loads(path.read_text())["invoice"]
        got.append((d["number"], d["customer"]["external_id"], d["invoice_type"], d["issuing_date"], d["fees_amount_cents"],
                    d["prepaid_granted_credit_amount_cents"], d["prepaid_purchased_credit_amount_cents"],
                    d["total_amount_cents"], d["payment_status"]))
    assert got == [
        ("MTH-001-001", "expiry_co", "subscription", "2026-11-01", 300, 0, 0, 300, "succeeded"),
        ("MTH-002-001", "interval_co", "credit", "2026-11-01", 1500, 0, 0, 1500, "succeeded"),
        ("MTH-002-002", "interval_co", "subscription", "2026-11-01", 1200, 1000, 200, 0, "succeeded"),
        ("MTH-003-001", "priority_co", "credit", "2026-10-01", 2000, 0, 0, 2000, "pending"),
        ("MTH-003-002", "priority_co", "credit", "2026-10-15", 1000, 0, 0, 1000, "pending"),
        ("MTH-003-003", "priority_co", "subscription", "2026-11-01", 1200, 500, 700, 0, "succeeded"),
        ("MTH-004-001", "target_co", "credit", "2026-10-01", 1000, 0, 0, 1000, "pending"),
        ("MTH-004-002", "target_co", "credit", "2026-10-05", 4600, 0, 0, 4600, "pending"),
        ("MTH-004-003", "target_co", "subscription", "2026-11-01", 600, 0, 600, 0, "succeeded"),
        ("MTH-005-001", "threshold_co", "credit", "2026-10-01", 1000, 0, 0, 1000, "pending"),
        ("MTH-005-002", "threshold_co", "credit", "2026-10-05", 2000, 0, 0, 2000, "pending"),
        ("MTH-005-003", "threshold_co", "subscription", "2026-11-01", 800, 0, 800, 0, "succeeded"),
    ]


def test_the_wallet_ledger_records_each_top_up_once(work):
    rows = _query(work, """
        select w.external_customer_id, w.code, t.transaction_date::varchar, t.source, t.status,
               t.settled_on::varchar, t.granted_amount_cents, t.paid_amount_cents, t.balance_after_cents
        from billing.wallet_transactions t join catalog.wallets w using (wallet_id)
        order by w.external_customer_id, t.sequence""")
    assert rows == [
        ("expiry_co", "trial", "2026-10-01", "wallet_creation", "settled", None, 5000, 0, 5000),
        ("expiry_co", "trial", "2026-10-10", "void", "settled", None, 2000, 0, 3000),
        ("interval_co", "main", "2026-10-01", "wallet_creation", "settled", None, 1000, 0, 1000),
        ("interval_co", "main", "2026-11-01", "interval_top_up", "settled", "2026-11-02", 0, 1500, 1000),
        ("interval_co", "main", "2026-11-02", "invoice_payment", "settled", None, 1000, 200, 1300),
        ("priority_co", "promo", "2026-10-01", "wallet_creation", "settled", None, 500, 0, 500),
        ("priority_co", "main", "2026-10-01", "wallet_creation", "settled", None, 0, 2000, 2000),
        ("priority_co", "main", "2026-10-15", "manual", "settled", None, 0, 1000, 3000),
        ("priority_co", "promo", "2026-11-02", "invoice_payment", "settled", None, 500, 0, 0),
        ("priority_co", "main", "2026-11-02", "invoice_payment", "settled", None, 0, 700, 2300),
        ("target_co", "main", "2026-10-01", "wallet_creation", "settled", None, 0, 1000, 1000),
        ("target_co", "main", "2026-10-05", "threshold_top_up", "settled", None, 0, 4600, 5600),
        ("target_co", "main", "2026-11-02", "invoice_payment", "settled", None, 0, 600, 5000),
        ("threshold_co", "main", "2026-10-01", "wallet_creation", "settled", None, 0, 1000, 1000),
        ("threshold_co", "main", "2026-10-05", "threshold_top_up", "settled", None, 0, 2000, 3000),
        ("threshold_co", "main", "2026-11-02", "invoice_payment", "settled", None, 0, 800, 2200),
    ]


def _published_transactions(out, wallet_file):
    return [(t["transaction_type"], t["transaction_status"], t["source"], t["status"], t["amount"], t["credit_amount"],
             t["created_at"], t["settled_at"], t["invoice_requires_successful_payment"], t["lago_invoice_id"])
            for t in json.loads((out / "wallet_transactions" / wallet_file).read_text())["wallet_transactions"]]


def _wallet_files(out):
    """(external customer id, wallet code) -> the wallet's file name (its lago_id)."""
    return {(w["external_customer_id"], w["code"]): path.name for path in (out / "wallets").glob("*.json")
            for w in [json.loads(path.read_text())["wallet"]]}


def _invoice_ids(out):
    return {d["number"]: d["lago_id"] for path in (out / "invoices").glob("*.json")
            for d in [json.loads(path.read_text())["invoice"]]}


def test_each_wallets_transactions_are_published_in_lagos_shape(work):
    """`OUT/wallet_transactions/<wallet lago_id>.json`: the ledger above as Lago's wallet
    transactions, oldest first. By hand, 1 credit = 1.00 USD: expiry_co's 50 granted credits
    (granted), 20 of them voided on Oct 10 (voided, outbound); interval_co's 10 granted, the monthly
    rule's 15 paid credits bought on Nov 1 (purchased, source interval, waiting for a payment: settled
    Nov 2, the day the payments file pays MTH-002-001), and the Nov 2 invoice paid with 12.00
    (invoiced: 10 granted + 2 paid); target_co's 10 paid at creation (source manual), the
    threshold rule's 46 bought on Oct 5 (source threshold) and 6.00 invoiced on Nov 2."""
    out = work / "out"
    files, invoices = _wallet_files(out), _invoice_ids(out)
    assert sorted(p.name for p in (out / "wallet_transactions").glob("*.json")) == sorted(files.values())

    def day(d):
        return f"2026-{d}T00:00:00Z"

    assert _published_transactions(out, files[("expiry_co", "trial")]) == [
        ("inbound", "granted", "manual", "settled", "50.00", "50.00000", day("10-01"), day("10-01"), False, None),
        ("outbound", "voided", "manual", "settled", "20.00", "20.00000", day("10-10"), day("10-10"), False, None),
    ]
    assert _published_transactions(out, files[("interval_co", "main")]) == [
        ("inbound", "granted", "manual", "settled", "10.00", "10.00000", day("10-01"), day("10-01"), False, None),
        ("inbound", "purchased", "interval", "settled", "15.00", "15.00000", day("11-01"), day("11-02"), True,
         invoices["MTH-002-001"]),
        ("outbound", "invoiced", "manual", "settled", "12.00", "12.00000", day("11-02"), day("11-02"), False,
         invoices["MTH-002-002"]),
    ]
    assert _published_transactions(out, files[("target_co", "main")]) == [
        ("inbound", "purchased", "manual", "settled", "10.00", "10.00000", day("10-01"), day("10-01"), False,
         invoices["MTH-004-001"]),
        ("inbound", "purchased", "threshold", "settled", "46.00", "46.00000", day("10-05"), day("10-05"), False,
         invoices["MTH-004-002"]),
        ("outbound", "invoiced", "manual", "settled", "6.00", "6.00000", day("11-02"), day("11-02"), False,
         invoices["MTH-004-003"]),
    ]


def test_wallet_balances(work):
    got = {}
    for path in (work / "out" / "wallets").glob("*.json"):
        w = json.loads(path.read_text())["wallet"]
        got[(w["external_customer_id"], w["code"])] = (w["status"], w["balance_cents"], w["credits_balance"])
    assert got == {
        ("expiry_co", "trial"): ("terminated", 0, "0.00000"),
        ("interval_co", "main"): ("active", 1300, "13.00000"),
        ("priority_co", "main"): ("active", 2300, "23.00000"),
        ("priority_co", "promo"): ("active", 0, "0.00000"),
        ("target_co", "main"): ("active", 5000, "50.00000"),
        ("threshold_co", "main"): ("active", 2200, "22.00000"),
    }


def test_payments_are_matched_and_bad_rows_quarantined_with_their_reason(work):
    assert _query(work, "select invoice_number, amount_cents, paid_on::varchar, provider, match_status from billing.payments") == [
        ("MTH-002-001", 1500, "2026-11-02", "stripe_eu", "applied"),
        ("MTH-001-001", 300, "2026-11-03", "stripe_us", "applied"),
        ("MTH-009-001", 500, "2026-11-03", "stripe_us", "unknown_invoice_number"),
    ]
    assert _query(work, "select source_file, line_number, reason from raw.payments_rejected") == [
        ("stripe_exports.csv", 4, "duplicate_payment"),
        ("stripe_exports.csv", 6, "invalid_amount"),
    ]


def test_without_the_payment_the_interval_credits_stay_pending(tmp_path):
    """The same scenario without its payments file: interval_co's 15 credits stay pending, its
    invoice takes only the 10 granted credits and 2.00 remain due."""
    shutil.copytree(SCENARIO / "events", tmp_path / "events")
    out = run_meterhouse(SCENARIO / "catalog", tmp_path / "events", tmp_path, "2026-11-03")
    d = json.loads((out / "invoices" / "MTH-002-002.json").read_text())["invoice"]
    assert (d["prepaid_granted_credit_amount_cents"], d["prepaid_purchased_credit_amount_cents"],
            d["total_amount_cents"], d["payment_status"]) == (1000, 0, 200, "pending")
    assert json.loads((out / "invoices" / "MTH-001-001.json").read_text())["invoice"]["payment_status"] == "pending"
    interval = _published_transactions(out, _wallet_files(out)[("interval_co", "main")])
    assert interval[1] == ("inbound", "purchased", "interval", "pending", "15.00", "15.00000",
                           "2026-11-01T00:00:00Z", None, True, _invoice_ids(out)["MTH-002-001"])


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_wallet_outputs_validate_against_lagos_openapi_schemas(work):
    assert_lago_schemas(work / "out", folders=(("invoices", "Invoice"), ("wallets", "Wallet"),
                                               ("wallet_transactions", "WalletTransactions")))
