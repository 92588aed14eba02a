"""Wallets limited by `applies_to` (fee types, billable metrics), and the metadata of wallet
transactions: Lago's `Credits::AllocatePrepaidCreditsByWalletsService` and
`Wallets::Balance::AllocateOngoingUsageByWalletsService`, figures worked out by hand."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from dagster_project.billing.wallets import (
    UNDIVIDED,
    DueInvoice,
    ManualTransaction,
    Rule,
    WalletSpec,
    _Balance,
    allocate_ongoing_usage,
    fee_caps,
    pay_invoice,
    replay_customer,
)
from dagster_project.catalog import CatalogError, read_catalog
from dagster_project.catalog import tables
from dagster_project.publish.lago_json import transaction_metadata, wallet_limitations

D = Decimal
TOKENS, IMAGES = ("charge", "tokens"), ("charge", "images")
SUBSCRIPTION, COMMITMENT = ("subscription", None), ("commitment", None)


def oct26(day: int) -> dt.date:
    return dt.date(2026, 10, day)


def wallet(wallet_id, *, granted="0", paid="0", priority=50, order=0, fee_types=(), metrics=(), rules=(),
           metadata=None) -> WalletSpec:
    return WalletSpec(wallet_id=wallet_id, priority=priority, creation_order=order, currency="USD",
                      rate_amount=D("1"), paid_credits=D(paid), granted_credits=D(granted), effective_on=oct26(1),
                      rules=rules, fee_types=tuple(fee_types), billable_metric_codes=tuple(metrics),
                      metadata_json=metadata)


def funded(spec: WalletSpec, cents: int) -> _Balance:
    return _Balance(spec, granted_cents=cents, is_active=True)


# --- which fees a wallet pays -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fee_types", "metrics", "paid_keys"),
    [
        ((), (), {TOKENS, IMAGES, SUBSCRIPTION, COMMITMENT, UNDIVIDED}),  # no limitation: everything
        ((), ("tokens",), {TOKENS}),  # one metric: its charge fees only
        (("charge",), (), {TOKENS, IMAGES}),  # every charge fee
        (("subscription", "commitment"), (), {SUBSCRIPTION, COMMITMENT}),
        (("subscription",), ("images",), {SUBSCRIPTION, IMAGES}),  # either list suffices (Lago: target or type)
    ],
)
def test_a_limited_wallet_pays_the_fees_of_its_types_and_of_its_metrics_only(fee_types, metrics, paid_keys):
    spec = wallet("w", fee_types=fee_types, metrics=metrics)
    keys = {TOKENS, IMAGES, SUBSCRIPTION, COMMITMENT, UNDIVIDED}
    assert {k for k in keys if spec.pays(k)} == paid_keys


# --- what an invoice's fees leave for wallets to pay ------------------------------------------------

# An invoice of a 10.00 USD subscription, 25.00 USD of tokens less a 5.00 USD coupon on tokens, and
# 3.33 USD of images, with 20% VAT:
#   subscription 1000 + tax 200.0 = 1200.0
#   tokens (2500 - 500) + tax 400.0 = 2400.0
#   images 333 + tax 66.6 = 399.6 -> 400 (half-up)
#   invoice: fees 3833 - coupons 500 = 3333, taxes 666.6 -> 667 (rounded once), total 4000 = 1200 + 2400 + 400.
INVOICE = DueInvoice("inv", oct26(5), 4000, "USD", (
    (SUBSCRIPTION, D("1200.0")), (TOKENS, D("2400.0")), (IMAGES, D("399.6")),
))


def test_each_fee_key_is_capped_at_its_fees_less_coupons_plus_taxes():
    assert fee_caps(INVOICE, 0) == {SUBSCRIPTION: 1200, TOKENS: 2400, IMAGES: 400}


def test_the_cent_the_invoice_taxes_round_up_goes_to_the_largest_key():
    """Fees 1000 (subscription) and 1232 twice (tokens, images) at 20%: fee taxes 200, 246.4 and 246.4,
    so the keys are 1200, 1478.4 -> 1478 and 1478.4 -> 1478, 4156 in all; the invoice's taxes are
    692.8 -> 693, its total 3464 + 693 = 4157. The missing cent (at most one per key) goes to the
    largest key; between equal keys, the first by name (images)."""
    invoice = DueInvoice("inv", oct26(5), 4157, "USD", (
        (SUBSCRIPTION, D("1200.0")), (TOKENS, D("1478.4")), (IMAGES, D("1478.4"))))
    assert fee_caps(invoice, 0) == {SUBSCRIPTION: 1200, TOKENS: 1478, IMAGES: 1479}


def test_credit_notes_that_paid_part_of_the_invoice_reduce_every_key_in_proportion():
    """1000 of 4000 paid by a credit note leaves 3/4 of each key: 900, 1800, 399.6 * 0.75 = 299.7 -> 300."""
    assert fee_caps(INVOICE, 1000) == {SUBSCRIPTION: 900, TOKENS: 1800, IMAGES: 300}


def test_an_invoice_given_without_its_fees_is_one_undivided_amount():
    assert fee_caps(DueInvoice("inv", oct26(5), 4000, "USD"), 1500) == {UNDIVIDED: 2500}


# --- several wallets on one invoice, in Lago's order ------------------------------------------------


def test_a_wallet_limited_to_one_metric_pays_only_that_metrics_fees_and_an_unlimited_one_the_rest():
    """Promo (30.00, tokens only, created first) pays the tokens key, 24.00, and keeps 6.00; the
    general wallet (20.00) then pays the subscription, 12.00, and the images, 4.00: 16.00, 4.00 left.
    Nothing is due."""
    promo = funded(wallet("promo", metrics=["tokens"], order=0), 3000)
    general = funded(wallet("general", order=1), 2000)
    paid = pay_invoice([general, promo], fee_caps(INVOICE, 0), 4000)
    assert [(b.spec.wallet_id, cents) for b, cents in paid] == [("promo", 2400), ("general", 1600)]


def test_wallets_pay_in_priority_order_even_when_an_unlimited_wallet_uses_up_what_a_limited_one_was_for():
    """Lago orders wallets by priority then creation, limited or not. The general wallet (priority 1,
    20.00) pays first, largest key first: 20.00 of the tokens' 24.00. The promo (tokens only) pays the
    tokens' last 4.00 and cannot pay the subscription or the images: 16.00 stays due."""
    promo = funded(wallet("promo", metrics=["tokens"], order=0), 3000)
    general = funded(wallet("general", priority=1, order=1), 2000)
    paid = pay_invoice([promo, general], fee_caps(INVOICE, 0), 4000)
    assert [(b.spec.wallet_id, cents) for b, cents in paid] == [("general", 2000), ("promo", 400)]


def test_a_wallet_limited_to_the_subscription_pays_nothing_of_usage():
    only_subscription = funded(wallet("w", fee_types=["subscription"]), 5000)
    paid = pay_invoice([only_subscription], fee_caps(INVOICE, 0), 4000)
    assert [(b.spec.wallet_id, cents) for b, cents in paid] == [("w", 1200)]


def test_the_replay_pays_an_invoice_from_a_limited_wallet_granted_credits_first():
    """Promo: 10 granted + 20 paid credits at 1 USD, tokens only. It pays the tokens key, 24.00:
    10.00 granted, then 14.00 paid; 6.00 paid credits stay. The invoice keeps 16.00 due."""
    result = replay_customer([wallet("promo", granted="10", paid="20", metrics=["tokens"])], [INVOICE], {},
                             [oct26(d) for d in range(1, 6)], lambda w, d, s: f"credit:{w}:{d}:{s}")
    assert result.credits_applied["inv"] == (1000, 1400)
    assert result.balances["promo"].cents == 600


# --- the ongoing balance ----------------------------------------------------------------------------


def test_open_usage_is_shared_key_by_key_among_the_wallets_that_pay_it():
    """Open usage: tokens 35.00, images 10.00. Tokens first (the larger): promo (30.00, tokens only)
    takes 30.00, the general wallet, last that pays tokens, the other 5.00. Images: only the general
    wallet pays them, 10.00. Promo 30.00, general 15.00."""
    promo = funded(wallet("promo", metrics=["tokens"], order=0), 3000)
    general = funded(wallet("general", order=1), 2000)
    assert allocate_ongoing_usage([promo, general], {TOKENS: 3500, IMAGES: 1000}) == {"promo": 3000, "general": 1500}


def test_usage_no_wallet_pays_lowers_no_ongoing_balance():
    """A wallet limited to tokens, with 12.00 of images open and 4.00 of tokens: its ongoing usage is 4.00."""
    promo = funded(wallet("promo", metrics=["tokens"]), 3000)
    assert allocate_ongoing_usage([promo], {IMAGES: 1200, TOKENS: 400}) == {"promo": 400}


def test_the_last_wallet_that_pays_a_key_carries_what_the_others_cannot():
    """Tokens 50.00 open, two wallets of 30.00 that pay tokens: the first 30.00, the last 20.00 (it could
    go below zero; here it does not). Then 80.00: 30.00 and 50.00, the last one 20.00 below zero."""
    a = funded(wallet("a", metrics=["tokens"], order=0), 3000)
    b = funded(wallet("b", fee_types=["charge"], order=1), 3000)
    assert allocate_ongoing_usage([a, b], {TOKENS: 5000}) == {"a": 3000, "b": 2000}
    assert allocate_ongoing_usage([a, b], {TOKENS: 8000}) == {"a": 3000, "b": 5000}


def test_a_threshold_rule_of_a_limited_wallet_watches_only_the_usage_it_pays():
    """Promo: 20 granted credits, tokens only, tops up 10 granted credits at 5 credits or below.
    Day 2: 30.00 of images open and 12.00 of tokens: its ongoing balance is 20 - 12 = 8 credits, no
    top-up (an unlimited wallet would be at -22). Day 3: tokens 16.00: 4 credits, it tops up 10."""
    rule = Rule(trigger="threshold", method="fixed", threshold_credits=D("5"), granted_credits=D("10"))
    usage = {oct26(2): {IMAGES: 3000, TOKENS: 1200}, oct26(3): {IMAGES: 3000, TOKENS: 1600}}
    result = replay_customer([wallet("promo", granted="20", metrics=["tokens"], rules=(rule,))], [], usage,
                             [oct26(1), oct26(2), oct26(3)], lambda w, d, s: f"credit:{w}:{d}:{s}")
    assert [(t.day, t.source, t.granted_cents) for t in result.transactions] == [
        (oct26(1), "wallet_creation", 2000), (oct26(3), "threshold_top_up", 1000)]
    assert result.ongoing_usage_cents == {"promo": 1600}


# --- metadata ---------------------------------------------------------------------------------------


def test_each_transaction_carries_the_metadata_of_the_body_or_rule_that_made_it():
    creation = json.dumps([{"key": "campaign", "value": "launch"}])
    top_up = json.dumps([{"key": "origin", "value": "rule"}])
    manual = json.dumps([{"key": "ticket", "value": "T-42"}])
    rule = Rule(trigger="threshold", method="fixed", threshold_credits=D("5"), granted_credits=D("10"),
                metadata_json=top_up)
    result = replay_customer(
        [wallet("w", granted="10", rules=(rule,), metadata=creation)], [], {oct26(3): 600},
        [oct26(1), oct26(2), oct26(3)], lambda w, d, s: f"credit:{w}:{d}:{s}",
        manual=[ManualTransaction("w", oct26(2), 0, granted_credits=D("1"), voided_credits=D("2"), metadata_json=manual)],
    )
    assert [(t.source, t.metadata_json) for t in result.transactions] == [
        ("wallet_creation", creation), ("manual", manual), ("void", manual), ("threshold_top_up", top_up)]


def test_transaction_metadata_is_published_as_lagos_key_value_list():
    assert transaction_metadata('[{"key": "ticket", "value": "T-42"}]') == [{"key": "ticket", "value": "T-42"}]
    assert transaction_metadata(None) == []


# --- the catalog ------------------------------------------------------------------------------------

CATALOG = [
    {"billable_metric": {"name": "Tokens", "code": "tokens", "aggregation_type": "sum_agg", "field_name": "n"}},
    {"customer": {"external_id": "acme", "currency": "USD"}},
]


def _catalog(tmp_path: Path, *extra: dict) -> Path:
    (tmp_path / "catalog.json").write_text(json.dumps([*CATALOG, *extra]))
    return tmp_path


def test_a_limited_wallet_and_its_metadata_become_catalog_columns_and_its_json_shows_applies_to(tmp_path):
    catalog = read_catalog(_catalog(tmp_path, {"wallet": {
        "external_customer_id": "acme", "currency": "USD", "rate_amount": "1", "code": "promo",
        "granted_credits": "10", "applies_to": {"fee_types": ["subscription"], "billable_metric_codes": ["tokens"]},
        "transaction_metadata": [{"key": "campaign", "value": "launch"}]}},
        {"wallet_transaction": {"wallet_id": "promo", "granted_credits": "5", "created_at": "2026-10-02T00:00:00Z",
                                "metadata": [{"key": "ticket", "value": "T-42"}]}}))
    (row,) = tables.wallets(catalog)
    assert (row["fee_types_json"], row["billable_metric_codes_json"], row["transaction_metadata_json"]) == (
        '["subscription"]', '["tokens"]', '[{"key": "campaign", "value": "launch"}]')
    assert tables.wallet_transactions(catalog)[0]["metadata_json"] == '[{"key": "ticket", "value": "T-42"}]'
    assert wallet_limitations(row) == {"applies_to": {"fee_types": ["subscription"], "billable_metric_codes": ["tokens"]}}


def test_a_wallet_without_limitations_shows_no_applies_to(tmp_path):
    catalog = read_catalog(_catalog(tmp_path, {"wallet": {
        "external_customer_id": "acme", "currency": "USD", "rate_amount": "1", "granted_credits": "10"}}))
    assert wallet_limitations(tables.wallets(catalog)[0]) == {}


@pytest.mark.parametrize(
    ("applies_to", "fragment"),
    [
        ({"billable_metric_codes": ["images"]},
         "body 3 (wallet 'acme'), field applies_to.billable_metric_codes: unknown billable metric 'images'"),
        ({"fee_types": ["add_on"]}, "applies_to.fee_types.0"),
    ],
)
def test_a_limitation_naming_an_unknown_metric_or_fee_type_is_refused_when_the_catalog_is_read(
        tmp_path, applies_to, fragment):
    with pytest.raises(CatalogError) as excinfo:
        read_catalog(_catalog(tmp_path, {"wallet": {
            "external_customer_id": "acme", "currency": "USD", "rate_amount": "1", "applies_to": applies_to}}))
    assert any(fragment in p for p in excinfo.value.problems), excinfo.value.problems


# --- an invoice's fees as the wallets see them ------------------------------------------------------


def test_each_fee_brings_its_amount_less_its_coupons_plus_its_precise_taxes_under_its_type_and_metric():
    """Fees of one invoice: tokens 2500 with a coupon share of 500.5 and taxes 399.9; a true-up of the
    images charge, 300, taxes 60 (a `charge` fee of its metric, as Lago makes it); the subscription
    1000, taxes 200; a commitment 150, no taxes. Tokens: 2500 - 500.5 + 399.9 = 2399.4."""
    import polars as pl

    from dagster_project.billing.charge_models import MONEY
    from dagster_project.billing.invoicing import wallet_fee_amounts

    fees = pl.DataFrame({
        "fee_id": ["f1", "f2", "f3", "f4"], "invoice_id": ["inv"] * 4,
        "fee_type": ["charge", "true_up", "subscription", "commitment"],
        "charge_id": ["c_tokens", "c_images", None, None], "amount_cents": [2500, 300, 1000, 150],
        "taxes_precise_amount_cents": pl.Series([D("399.9"), D("60"), D("200"), D("0")], dtype=MONEY),
    })
    fee_coupons = pl.DataFrame({"fee_id": ["f1", "f1"], "precise_amount_cents": pl.Series([D("300.5"), D("200")], dtype=MONEY)})
    charges = pl.DataFrame({"charge_id": ["c_tokens", "c_images"], "billable_metric_code": ["tokens", "images"]})
    assert wallet_fee_amounts(fees, fee_coupons, charges) == {"inv": (
        (TOKENS, D("2399.4")), (IMAGES, D("360")), (SUBSCRIPTION, D("1200")), (COMMITMENT, D("150")))}
