"""Pricing group keys (`pricing_group_keys`): the pure rules (billing/grouping.py, the catalog check)
and `bill()` pricing each group on its own, every figure by hand.

The bill() cases reuse test_bill's October 2026 (one customer, one monthly subscription of 10.00 USD
billed 2026-11-01, VAT 10% on every fee): a package charge of 1.00 USD per 1,000,000 tokens, grouped
by `project_id`.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl

from dagster_project.billing.grouping import NO_GROUP, group_label, grouped_by, usage_by_group
from dagster_project.billing.invoicing import bill
from dagster_project.catalog import tables
from dagster_project.catalog.ids import plan_id
from dagster_project.catalog.models import BillableMetric, Charge
from dagster_project.catalog.reader import grouped_charge_problems, pricing_group_keys_problems, property_problems
from tests.unit.test_bill import (
    CHARGE_SCHEMA, CUSTOMER, FILTER_SCHEMA, USAGE_SCHEMA, charge, customer_tax_book, customers, october, usage, wallet,
)

D = dt.date
GROUPED = "charge-grouped"


# --- the group of a row -------------------------------------------------------------------------

def test_the_group_takes_the_charges_keys_in_its_order_with_the_events_values():
    assert grouped_by(["project_id", "api_key"], '{"api_key": "k1", "model": "small", "project_id": "alpha"}') \
        == '{"project_id":"alpha","api_key":"k1"}'


def test_an_event_without_a_group_key_is_grouped_under_null_as_lago_does():
    # lago-api reads event.properties[key], nil for a missing key: {"project_id": nil}
    assert grouped_by(["project_id"], '{"model": "small"}') == '{"project_id":null}'
    assert grouped_by(["project_id"], None) == '{"project_id":null}'


def test_a_fee_line_shows_the_groups_values_and_nothing_for_a_bucket_not_grouped():
    assert group_label('{"project_id":"alpha","api_key":"k1"}') == "alpha • k1"
    assert group_label('{"project_id":null}') is None
    assert group_label(NO_GROUP) is None
    assert group_label(None) is None


def _by_dimensions(charge_id: str, dimensions: dict, tokens: int, arrival: dt.date, events: int = 1) -> dict:
    row = usage(charge_id, tokens, arrival, events)
    del row["usage_daily_id"]
    return {**row, "usage_by_dimensions_id": f"{charge_id}-{json.dumps(dimensions)}-{arrival}",
            "dimensions_json": json.dumps(dimensions)}


def test_a_grouped_buckets_rows_come_from_the_dimensions_and_the_others_stay_whole():
    whole = pl.DataFrame([usage("charge-whole", 5, D(2026, 10, 5)), usage(GROUPED, 7, D(2026, 10, 5))], schema=USAGE_SCHEMA)
    split = pl.DataFrame([_by_dimensions(GROUPED, {"project_id": "alpha"}, 3, D(2026, 10, 5)),
                          _by_dimensions(GROUPED, {"project_id": "beta"}, 4, D(2026, 10, 5))])
    out = usage_by_group(whole, split, {(GROUPED, "default"): ["project_id"]})
    assert sorted((r["charge_id"], r["grouped_by"], r["units"]) for r in out.iter_rows(named=True)) == [
        ("charge-grouped", '{"project_id":"alpha"}', Decimal(3)),
        ("charge-grouped", '{"project_id":"beta"}', Decimal(4)),
        ("charge-whole", NO_GROUP, Decimal(5)),  # (the grouped charge's whole row, 7, is replaced by its groups)
    ]


# --- pricing each group -------------------------------------------------------------------------

def _bill_grouped(rows: list[dict]):
    charges = pl.DataFrame([charge(GROUPED, "package", {"amount": "1", "package_size": 1000000,
                                                        "pricing_group_keys": ["project_id"]}, 0)], schema=CHARGE_SCHEMA)
    whole = pl.DataFrame([usage(GROUPED, sum(r["units"] for r in rows), D(2026, 10, 5))], schema=USAGE_SCHEMA)
    return bill(
        through=D(2026, 11, 2), usage=whole, periods=october(), charges=charges,
        filters=pl.DataFrame(schema=FILTER_SCHEMA), customers=customers(), wallets=wallet("0").clear(),
        customer_sequences={CUSTOMER: 1}, number_prefix="MTH", tax_book=customer_tax_book(),
        usage_by_dimensions=pl.DataFrame(rows), group_keys={(GROUPED, "default"): ["project_id"]},
    )


def test_each_group_rounds_up_to_its_own_packages_and_has_its_own_fee_line():
    """alpha: 1,500,000 + 300,000 = 1,800,000 tokens -> ceil(1.8) = 2 packages = 2.00 USD;
    beta: 100,000 -> 1 package = 1.00 USD; an event without project_id: 600,000 -> 1 package = 1.00.
    3 fees, 4.00 USD (priced as a whole, 2,500,000 tokens would be 3 packages = 3.00 USD).
    Invoice: 10.00 subscription + 4.00 = 14.00; VAT 10% = 1.40; total 15.40."""
    result = _bill_grouped([
        _by_dimensions(GROUPED, {"project_id": "alpha"}, 1_500_000, D(2026, 10, 5)),
        _by_dimensions(GROUPED, {"project_id": "alpha"}, 300_000, D(2026, 10, 20)),
        _by_dimensions(GROUPED, {"project_id": "beta"}, 100_000, D(2026, 10, 20)),
        _by_dimensions(GROUPED, {}, 600_000, D(2026, 10, 20)),
    ])
    fees = result.fees.filter(pl.col("fee_type") == "charge")
    assert sorted((f["grouped_by"], f["units"], f["amount_cents"], f["events_count"]) for f in fees.iter_rows(named=True)) == [
        ('{"project_id":"alpha"}', Decimal(1_800_000), 200, 2),
        ('{"project_id":"beta"}', Decimal(100_000), 100, 1),
        ('{"project_id":null}', Decimal(600_000), 100, 1),
    ]
    (invoice,) = result.invoices.filter(pl.col("invoice_type") == "subscription").to_dicts()
    assert (invoice["fees_amount_cents"], invoice["taxes_amount_cents"], invoice["total_amount_cents"]) == (1400, 140, 1540)
    assert len(set(fees["fee_id"])) == 3
    assert sorted(result.fee_groups["grouped_by"]) == sorted(fees["grouped_by"])


def test_a_bucket_without_group_keys_keeps_its_fee_id_and_has_no_group_row():
    from tests.unit.test_bill import bill_usd  # (test_bill's charges have no group keys)

    result = bill_usd(D(2026, 11, 2))
    assert set(result.fees["grouped_by"]) == {NO_GROUP}
    assert result.fee_groups.is_empty()
    # the id of a fee priced as a whole is stable_id("fee", invoice, charge, bucket), as before groups
    from dagster_project.billing.money import stable_id
    package = result.fees.filter(pl.col("charge_id") == "charge-package").to_dicts()[0]
    assert package["fee_id"] == stable_id("fee", package["invoice_id"], "charge-package", "default")


# --- the catalog check --------------------------------------------------------------------------

def test_pricing_group_keys_must_be_a_list_of_property_names():
    assert pricing_group_keys_problems(["project_id"]) == []
    assert pricing_group_keys_problems([]) == []
    assert pricing_group_keys_problems("project_id") == [
        'properties.pricing_group_keys: "project_id" is not a list of event property names (non-empty texts)']
    assert pricing_group_keys_problems(["project_id", ""]) == [
        'properties.pricing_group_keys: ["project_id", ""] is not a list of event property names (non-empty texts)']
    assert pricing_group_keys_problems(["a", "a"]) == ["properties.pricing_group_keys: 'a' is named more than once"]
    assert property_problems("graduated", {"graduated_ranges": [{"from_value": 0, "to_value": None, "per_unit_amount": "1",
                                                                 "flat_amount": "0"}], "pricing_group_keys": ["k"]}) == []


def _metric(aggregation_type: str) -> BillableMetric:
    return BillableMetric(name="t", code="tokens", aggregation_type=aggregation_type,
                          field_name=None if aggregation_type == "count_agg" else "tokens")


def _charge(**fields) -> Charge:
    return Charge(billable_metric_code="tokens", **{"charge_model": "standard",
                                                    "properties": {"amount": "1", "pricing_group_keys": ["p"]}, **fields})


def test_group_keys_on_charges_priced_event_by_event_or_on_unique_counts_are_refused_by_name():
    assert grouped_charge_problems(_charge(), _metric("sum_agg")) == []
    assert grouped_charge_problems(_charge(pay_in_advance=True), _metric("sum_agg")) == [
        "properties.pricing_group_keys: pricing group keys on a charge paid in advance are not supported yet by Meterhouse"]
    assert grouped_charge_problems(_charge(charge_model="percentage", properties={"rate": "1", "pricing_group_keys": ["p"]}),
                                   _metric("sum_agg")) == [
        "properties.pricing_group_keys: pricing group keys on a percentage charge are not supported yet by Meterhouse"]
    assert grouped_charge_problems(_charge(), _metric("unique_count_agg")) == [
        "properties.pricing_group_keys: pricing group keys on a charge on unique_count_agg metric 'tokens' are not "
        "supported yet by Meterhouse"]


# --- through the catalog reader and the tables ----------------------------------------------------

def test_an_override_may_group_a_filter_and_the_tables_name_each_grouped_bucket_and_its_keys(tmp_path):
    """The plan (tests/unit/test_plan_overrides.py's `ai`) groups nothing; Globex's override groups its
    `large` filter by project and API key (in that order) and its `calls` charge by project."""
    from tests.unit.test_plan_overrides import _catalog

    catalog = _catalog(tmp_path, {"charges": [
        {"billable_metric_code": "tokens", "filters": [
            {"invoice_display_name": "large", "values": {"model": ["large"]},
             "properties": {"amount": "2", "package_size": 1000000, "pricing_group_keys": ["project_id", "api_key"]}}]},
        {"billable_metric_code": "calls", "properties": {"amount": "0.05", "pricing_group_keys": ["project_id"]}},
    ]})
    charges = {(c["plan_id"] != plan_id("ai"), c["billable_metric_code"]): c["charge_id"] for c in tables.charges(catalog)}
    (large,) = [f["charge_filter_id"] for f in tables.charge_filters(catalog) if f["charge_id"] == charges[(True, "tokens")]]
    assert sorted((r["charge_id"], r["charge_filter_key"], r["key_index"], r["group_key"]) for r in tables.pricing_group_keys(catalog)) \
        == sorted([(charges[(True, "tokens")], large, 0, "project_id"), (charges[(True, "tokens")], large, 1, "api_key"),
                   (charges[(True, "calls")], "default", 0, "project_id")])
    # the group keys are loaded with the events (property keys) and are dimensions (with the filter key)
    assert tables.group_keys(catalog) == ["api_key", "project_id"]
    assert set(tables.property_keys(catalog)) >= {"api_key", "project_id", "model", "tokens"}


def test_group_keys_that_are_not_a_list_in_an_override_are_refused_with_the_override_named(tmp_path):
    from tests.unit.test_plan_overrides import AT, _catalog_problems

    assert _catalog_problems(tmp_path, {"charges": [
        {"billable_metric_code": "calls", "properties": {"amount": "0.05", "pricing_group_keys": "project_id"}}]}) == [
        f'{AT}.charges.0.properties.pricing_group_keys: "project_id" is not a list of event property names (non-empty texts)']


def test_progressive_invoices_bill_each_group_and_each_later_invoice_deducts_the_fee_of_the_same_group():
    """The grouped package charge (1.00 USD per 1,000,000 tokens per project) with thresholds 2.00
    fixed and 1.00 recurring, VAT 10%:
    Oct 5: alpha 1,500,000 tokens = 2 packages = 200: lifetime 200 passes 2.00: MTH-001-001 bills
      alpha 200, VAT 20, total 220.
    Oct 20: alpha + 300,000 = 1,800,000 (still 2 packages: 200), beta 100,000 = 1 package (100):
      300; billed 200, so (300 - 200) + 200 % 100 = 100 >= 100: the recurring one. MTH-001-002 bills
      alpha 200 + beta 100 = 300, less MTH-001-001's alpha fee (200) on its alpha fee only (beta's
      group had no fee there): sub-total 100; VAT alpha 0 + beta 10 = 10; total 110.
    Nov 1 (October): 1000 + alpha 200 + beta 100 = 1300, less MTH-001-002's fees group by group
      (alpha 200, beta 100): sub-total 1000, VAT 100, total 1100. In all 200 + 100 + 1000 = 1300
      before taxes: each group's usage billed once."""
    from tests.unit.test_bill import thresholds

    charges = pl.DataFrame([charge(GROUPED, "package", {"amount": "1", "package_size": 1000000,
                                                        "pricing_group_keys": ["project_id"]}, 0)], schema=CHARGE_SCHEMA)
    rows = [_by_dimensions(GROUPED, {"project_id": "alpha"}, 1_500_000, D(2026, 10, 5)),
            _by_dimensions(GROUPED, {"project_id": "alpha"}, 300_000, D(2026, 10, 20)),
            _by_dimensions(GROUPED, {"project_id": "beta"}, 100_000, D(2026, 10, 20))]
    whole = pl.DataFrame([usage(GROUPED, 1_500_000, D(2026, 10, 5)), usage(GROUPED, 400_000, D(2026, 10, 20))],
                         schema=USAGE_SCHEMA)
    result = bill(
        through=D(2026, 11, 2), usage=whole, periods=october(), charges=charges,
        filters=pl.DataFrame(schema=FILTER_SCHEMA), customers=customers(), wallets=wallet("0").clear(),
        customer_sequences={CUSTOMER: 1}, number_prefix="MTH", tax_book=customer_tax_book(),
        usage_by_dimensions=pl.DataFrame(rows), group_keys={(GROUPED, "default"): ["project_id"]},
        usage_thresholds=thresholds((200, False), (100, True)),
    )
    invoices = {i["number"]: (i["invoice_type"], i["issuing_date"], i["fees_amount_cents"],
                              i["progressive_billing_credit_amount_cents"], i["taxes_amount_cents"], i["total_amount_cents"])
                for i in result.invoices.iter_rows(named=True)}
    assert invoices == {"MTH-001-001": ("progressive_billing", D(2026, 10, 5), 200, 0, 20, 220),
                        "MTH-001-002": ("progressive_billing", D(2026, 10, 20), 300, 200, 10, 110),
                        "MTH-001-003": ("subscription", D(2026, 11, 1), 1300, 300, 100, 1100)}
    number = dict(result.invoices.select("invoice_id", "number").iter_rows())
    group_of = {f["fee_id"]: (number[f["invoice_id"]], f["grouped_by"]) for f in result.fees.iter_rows(named=True)}
    # each credit sits on the taker's fee of the group it deducts, and names the invoice it deducts
    credits = sorted((group_of[c["fee_id"]], number[c["progressive_billing_invoice_id"]], c["amount_cents"])
                     for c in result.progressive_billing_credits.iter_rows(named=True))
    assert credits == [(("MTH-001-002", '{"project_id":"alpha"}'), "MTH-001-001", 200),
                       (("MTH-001-003", '{"project_id":"alpha"}'), "MTH-001-002", 200),
                       (("MTH-001-003", '{"project_id":"beta"}'), "MTH-001-002", 100)]
    # the fee ids are distinct per invoice and group (the group is part of the id)
    assert len(group_of) == result.fees.height == 1 + 2 + 3
