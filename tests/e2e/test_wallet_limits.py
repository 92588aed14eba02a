"""Limited wallets and transaction metadata through `meterhouse run` (tests/scenarios/wallet_limits),
billed through 2026-11-15. Every figure by hand.

Plan `pro`: 10.00 USD a month in arrears, AI tokens at 0.00001 USD each (10.00 a million), images at
0.05 each. Acme pays 20% VAT. Coupon `img2`: 2.00 off, once, limited to the images metric, applied on
Oct 1. Two wallets created on Oct 1, 1 credit = 1 USD, same priority (creation order: promo first):
- `promo`: 30 granted credits, `applies_to: {billable_metric_codes: [tokens]}`, `transaction_metadata`
  campaign=launch, a threshold rule (ongoing balance <= 0 credits: grant 10, metadata origin=auto);
  a manual wallet_transaction grants it 5 more on Oct 20 (metadata ticket=T-42).
- `general`: 10 granted credits, no limitation; a manual wallet_transaction grants it 5 more on Nov 5.

Oct 15 (arrival): 2,500,000 tokens (25.00 + VAT 5.00 = 30.00 open) and 60 images (3.00 + 0.60 = 3.60).
  Promo pays tokens only: its ongoing usage is the tokens' 30.00, its ongoing balance 30 - 30 = 0
  credits <= 0: the rule grants 10 (4000 cents). General carries the images' 3.60.
Oct 20: promo + 5 granted: 4500.
Invoice MTH-001-001 (October, finalized Nov 1, paid from wallets on Nov 2):
  fees: subscription 10.00, tokens 25.00, images 3.00 = 38.00; img2 takes 2.00 off images;
  sub-total 36.00; VAT 20% = 7.20; total 43.20.
  What wallets may pay, per fee key (fees less coupons, plus their taxes):
    tokens 25.00 + 5.00 = 30.00; subscription 10.00 + 2.00 = 12.00; images (3.00 - 2.00) + 0.20 = 1.20.
  Promo (first) pays the tokens' 30.00 and nothing else: 15.00 left. General pays, largest first,
  the subscription's 12.00 up to its 10.00: 0 left. Prepaid credits 40.00; due 43.20 - 40.00 = 3.20
  (promo's 15.00 cannot pay the subscription's last 2.00 nor the images' 1.20).
Nov 5: general + 5 granted: 500.
Nov 15 (arrival): 400,000 tokens (4.00 + 0.80 = 4.80) and 20 images (1.00 + 0.20 = 1.20) open.
  Promo's ongoing usage is the tokens' 4.80 only: ongoing balance 15.00 - 4.80 = 10.20 (no
  top-up; were it unlimited, as the first wallet it would carry 6.00). General's 1.20: ongoing
  balance 5.00 - 1.20 = 3.80.
"""

import json
import shutil

import duckdb
import pytest

from tests.conftest import OPENAPI, REPO, assert_lago_schemas, bill_scenario, run_meterhouse, snapshot

THROUGH = "2026-11-15"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return bill_scenario(tmp_path_factory, "wallet_limits", THROUGH)


def _wallets(out) -> dict[str, dict]:
    docs = [json.loads(p.read_text())["wallet"] for p in (out / "wallets").glob("*.json")]
    return {w["code"]: w for w in docs}


def test_the_limited_wallet_pays_only_the_token_fees_and_the_rest_stays_due(out):
    invoice = json.loads((out / "invoices" / "MTH-001-001.json").read_text())["invoice"]
    assert (invoice["fees_amount_cents"], invoice["coupons_amount_cents"], invoice["taxes_amount_cents"],
            invoice["sub_total_including_taxes_amount_cents"], invoice["prepaid_credit_amount_cents"],
            invoice["total_amount_cents"]) == (3800, 200, 720, 4320, 4000, 320)


def test_the_ledger_shows_each_wallet_paying_its_own_fees(out):
    with duckdb.connect(str(out.parent / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.sql("""select wallet_key, transaction_date::varchar, source, granted_amount_cents, balance_after_cents
                            from marts.fct_wallet_transactions order by sequence""").fetchall()
    assert ledger == [
        ("acme/promo", "2026-10-01", "wallet_creation", 3000, 3000),
        ("acme/general", "2026-10-01", "wallet_creation", 1000, 1000),
        ("acme/promo", "2026-10-15", "threshold_top_up", 1000, 4000),
        ("acme/promo", "2026-10-20", "manual", 500, 4500),
        ("acme/promo", "2026-11-02", "invoice_payment", 3000, 1500),
        ("acme/general", "2026-11-02", "invoice_payment", 1000, 0),
        ("acme/general", "2026-11-05", "manual", 500, 500),
    ]


def test_the_ongoing_balance_of_the_limited_wallet_counts_only_the_token_usage(out):
    wallets = _wallets(out)
    assert {code: (w["balance_cents"], w["ongoing_usage_balance_cents"], w["ongoing_balance_cents"],
                   w["credits_ongoing_balance"]) for code, w in wallets.items()} == {
        "promo": (1500, 480, 1020, "10.20000"),
        "general": (500, 120, 380, "3.80000"),
    }


def test_the_wallet_json_shows_applies_to_and_the_rules_transaction_metadata(out):
    wallets = _wallets(out)
    assert wallets["promo"]["applies_to"] == {"fee_types": [], "billable_metric_codes": ["tokens"]}
    assert "applies_to" not in wallets["general"]
    assert [r["transaction_metadata"] for r in wallets["promo"]["recurring_transaction_rules"]] == [
        [{"key": "origin", "value": "auto"}]]


def test_each_transactions_metadata_is_kept_in_the_marts(out):
    with duckdb.connect(str(out.parent / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("""select wallet_key, transaction_date::varchar, source, metadata_position, metadata_key, metadata_value
                          from marts.fct_wallet_transaction_metadata order by transaction_date""").fetchall()
    assert rows == [
        ("acme/promo", "2026-10-01", "wallet_creation", 1, "campaign", "launch"),
        ("acme/promo", "2026-10-15", "threshold_top_up", 1, "origin", "auto"),
        ("acme/promo", "2026-10-20", "manual", 1, "ticket", "T-42"),
    ]


def test_the_published_wallet_transactions_carry_their_metadata(out):
    """promo's ledger as Lago's wallet transactions (oldest first): its creation credits with the
    wallet's campaign=launch, the rule's top-up with origin=auto, the manual grant with ticket=T-42,
    and the invoice payment with none."""
    promo = _wallets(out)["promo"]
    listed = json.loads((out / "wallet_transactions" / f"{promo['lago_id']}.json").read_text())["wallet_transactions"]
    assert [(t["transaction_status"], t["source"], t["credit_amount"], t["metadata"]) for t in listed] == [
        ("granted", "manual", "30.00000", [{"key": "campaign", "value": "launch"}]),
        ("granted", "threshold", "10.00000", [{"key": "origin", "value": "auto"}]),
        ("granted", "manual", "5.00000", [{"key": "ticket", "value": "T-42"}]),
        ("invoiced", "manual", "30.00000", []),
    ]


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_the_invoice_usage_and_wallets_validate_against_lagos_schema(out):
    assert_lago_schemas(out, folders=(("invoices", "Invoice"), ("current_usage", "CustomerUsage"), ("wallets", "Wallet"),
                                      ("wallet_transactions", "WalletTransactions")))


def test_a_rerun_changes_no_output_byte(out, tmp_path):
    work = tmp_path / "work"  # a copy: the other tests read the module's warehouse as billed
    shutil.copytree(out.parent, work)
    before = snapshot(work / "out")
    run_meterhouse(REPO / "tests" / "scenarios" / "wallet_limits" / "catalog", work / "events", work, THROUGH)
    assert snapshot(work / "out") == before
