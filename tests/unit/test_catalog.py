"""The catalog: Lago request bodies read from a folder, checked as a whole, with precise messages."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from dagster_project.billing.charge_models import MONEY, precise_amount, property_columns
from dagster_project.catalog import CatalogError, read_catalog
from dagster_project.catalog.reader import resolve_wallet
from dagster_project.catalog import tables
from dagster_project.catalog.tables import expand_filter_values


def _repo_root() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "dagster_project").is_dir():
            return parent
    raise RuntimeError("tests/unit is not inside the Meterhouse repository")


REPO = _repo_root()
EXAMPLE = REPO / "seeds" / "mistral" / "catalog"
SHARED = REPO.parent / "shared"
SEED = SHARED / "seeds" / "002_3e470c71e4117385.txt"


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled example, to break one thing at a time."""
    target = tmp_path / "catalog"
    shutil.copytree(EXAMPLE, target)
    return target


def edit(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(CatalogError) as excinfo:
        read_catalog(folder)
    assert excinfo.value.problems, "a CatalogError lists its problems"
    message = str(excinfo.value)
    assert all(p in message for p in excinfo.value.problems)
    return excinfo.value.problems


def the_problem(problems: list[str], *fragments: str) -> str:
    matching = [p for p in problems if all(f in p for f in fragments)]
    assert matching, f"no problem mentions all of {fragments}: {problems}"
    return matching[0]


# --- the bundled example ------------------------------------------------------------------------------


def test_the_bundled_mistral_example_loads():
    catalog = read_catalog(EXAMPLE)
    assert [m.code for m in catalog.billable_metrics] == ["mistral_tokens"]
    assert [p.code for p in catalog.plans] == ["mistral_pricing", "mistral_optimized_models"]
    assert [c.external_id for c in catalog.customers] == ["acme", "globex", "initech"]
    assert [s.external_id for s in catalog.subscriptions] == ["sub_00001", "sub_00002", "sub_00003"]
    assert len(catalog.wallets) == 2
    assert catalog.customer("acme").timezone == "America/New_York"


def test_the_example_plan_names_its_metric_by_billable_metric_id_holding_the_code():
    catalog = read_catalog(EXAMPLE)
    charge = catalog.plan("mistral_pricing").charges[0]
    assert charge.billable_metric_id == "mistral_tokens"
    assert charge.metric_code == "mistral_tokens"
    assert len(charge.filters) == 4
    assert len(catalog.plan("mistral_optimized_models").charges[0].filters) == 6


def test_the_example_wallet_amounts_are_exact_decimals():
    acme = read_catalog(EXAMPLE).wallets[0]
    assert (acme.paid_credits, acme.granted_credits, acme.rate_amount) == (Decimal("100.0"), Decimal("25.0"), Decimal("1.0"))
    assert all(isinstance(v, Decimal) for v in (acme.paid_credits, acme.granted_credits, acme.rate_amount))


def test_wallet_rules_are_a_table_of_their_own_with_their_decimals_as_written(tmp_path):
    """One row per rule, in the order written, nothing serialized: the example's Globex wallet has
    one threshold rule (20.0 credits, top up 50.0 paid and 0 granted); a second wallet here has
    two, the second a target rule started on Oct 5 (in its own offset, +02:00)."""
    rules = tables.wallet_rules(read_catalog(EXAMPLE))
    assert [(r["rule_index"], r["trigger"], r["method"], r["threshold_credits"], r["paid_credits"], r["granted_credits"],
             r["target_ongoing_balance"], r["interval"], r["started_on"]) for r in rules] == [
        (0, "threshold", "fixed", "20.0", "50.0", "0", None, None, None)]
    assert rules[0]["wallet_id"] == next(w["wallet_id"] for w in tables.wallets(read_catalog(EXAMPLE)) if w["code"] == "prepaid")
    assert "recurring_transaction_rules_json" not in tables.wallets(read_catalog(EXAMPLE))[0]

    (tmp_path / "catalog.json").write_text(json.dumps([
        {"customer": {"external_id": "c", "currency": "EUR"}},
        {"wallet": {"external_customer_id": "c", "currency": "EUR", "rate_amount": "1", "recurring_transaction_rules": [
            {"trigger": "interval", "interval": "monthly", "paid_credits": "10"},
            {"trigger": "threshold", "method": "target", "threshold_credits": "5", "target_ongoing_balance": "100.50",
             "grants_target_top_up": True, "started_at": "2026-10-05T00:30:00+02:00"}]}}]))
    rules = tables.wallet_rules(read_catalog(tmp_path))
    assert [(r["rule_index"], r["trigger"], r["method"], r["interval"], r["threshold_credits"], r["target_ongoing_balance"],
             r["paid_credits"], r["grants_target_top_up"], r["started_on"]) for r in rules] == [
        (0, "interval", "fixed", "monthly", None, None, "10", False, None),
        (1, "threshold", "target", None, "5", "100.50", None, True, dt.date(2026, 10, 5))]


def test_subscription_times_are_kept_as_naive_utc():
    catalog = read_catalog(EXAMPLE)
    globex = next(s for s in catalog.subscriptions if s.external_id == "sub_00002")
    # "2026-09-30T22:00:00Z" is midnight Oct 1 in Paris; stored as naive 22:00 UTC
    assert globex.subscription_at.tzinfo is None
    assert (globex.subscription_at.day, globex.subscription_at.hour) == (30, 22)


# --- the Lago documentation bodies, verbatim -------------------------------------------------------


PLACEHOLDERS = {
    "__BILLABLE_METRIC_CODE__": "ai_tokens",
    "__BILLABLE_METRIC_ID__": "ai_tokens",  # a file catalog has no server ids: the id holds the code
    "__PLAN_CODE__": "mistral_ai",
    "__EXTERNAL_CUSTOMER_ID__": "cust_acme",
    "__EXTERNAL_SUBSCRIPTION_ID__": "sub_acme_1",
}
CATALOG_KINDS = ("billable_metric", "plan", "customer", "wallet", "subscription")


def seed_bodies() -> list[dict]:
    """The cURL `--data-raw '{...}'` bodies of the seed, placeholders replaced, in document order."""
    if not SEED.is_file():
        pytest.skip(f"the shared Lago seed {SEED} is absent (expected next to the repository, in ../shared)")
    text = SEED.read_text(encoding="utf-8")
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    bodies = [json.loads(raw) for raw in re.findall(r"--data-raw '(\{.*?\})'", text, flags=re.DOTALL)]
    return [b for b in bodies if next(iter(b)) in CATALOG_KINDS]


@pytest.fixture
def seed_catalog_dir(tmp_path: Path) -> Path:
    bodies = seed_bodies()
    assert [next(iter(b)) for b in bodies] == list(CATALOG_KINDS)
    folder = tmp_path / "seed_catalog"
    folder.mkdir()
    for index, body in enumerate(bodies, start=1):
        (folder / f"{index:02d}_{next(iter(body))}.json").write_text(json.dumps(body, indent=2))
    return folder


def test_the_lago_documentation_bodies_load_verbatim(seed_catalog_dir):
    catalog = read_catalog(seed_catalog_dir)
    (metric,) = catalog.billable_metrics
    assert (metric.code, metric.aggregation_type, metric.field_name) == ("ai_tokens", "sum_agg", "tokens")
    assert {f.key: f.values for f in metric.filters} == {
        "model": ["mistral-small", "mistral-medium", "mistral-large"],
        "type": ["input", "output"],
    }
    (plan,) = catalog.plans
    assert (plan.code, plan.interval, plan.amount_cents, plan.amount_currency) == ("mistral_ai", "monthly", 0, "USD")
    (charge,) = plan.charges
    assert (charge.metric_code, charge.charge_model) == ("ai_tokens", "package")
    assert [f.invoice_display_name for f in charge.filters] == [
        "mistral-small-input", "mistral-small-output", "mistral-large-input", "mistral-large-output",
    ]
    (customer,) = catalog.customers
    assert (customer.external_id, customer.currency, customer.timezone) == ("cust_acme", "USD", "America/New_York")
    (wallet,) = catalog.wallets
    assert (wallet.paid_credits, wallet.granted_credits, wallet.rate_amount) == (Decimal(100), Decimal(25), Decimal(1))
    (subscription,) = catalog.subscriptions
    assert (subscription.external_id, subscription.plan_code, subscription.external_customer_id) == (
        "sub_acme_1", "mistral_ai", "cust_acme",
    )
    assert subscription.billing_time == "calendar"  # Lago's default


def test_two_million_small_input_tokens_cost_two_dollars_from_the_verbatim_plan(seed_catalog_dir):
    catalog = read_catalog(seed_catalog_dir)
    small_input = next(r for r in tables.charge_filters(catalog) if r["invoice_display_name"] == "mistral-small-input")
    props = property_columns(small_input["properties_json"])
    # amount "1" per package_size 1000000, free_units 0: 2,000,000 tokens = 2 packages = 2.00 USD
    frame = pl.DataFrame(
        {"units": [Decimal(2_000_000)], "charge_model": ["package"], "p_amount": [props["p_amount"]],
         "p_package_size": [props["p_package_size"]], "p_free_units": [props["p_free_units"]]},
        schema={"units": MONEY, "charge_model": pl.String, "p_amount": MONEY, "p_package_size": MONEY,
                "p_free_units": MONEY},
    )
    assert precise_amount(frame).to_list() == [Decimal(2)]


# --- broken catalogs: every message names the file, the body and the field ---------------------------


def test_an_unknown_metric_code_in_a_plan_is_named_with_its_field(catalog_dir):
    edit(catalog_dir / "02_plans.json", lambda d: d[1]["plan"]["charges"][0].update(billable_metric_code="gpt_tokens"))
    problem = the_problem(problems_of(catalog_dir), "gpt_tokens")
    assert "02_plans.json" in problem
    assert "body 2" in problem
    assert "charges.0.billable_metric_code" in problem


def test_an_unknown_metric_named_by_billable_metric_id_is_reported_at_that_field(catalog_dir):
    edit(catalog_dir / "02_plans.json", lambda d: d[0]["plan"]["charges"][0].update(billable_metric_id="gpt_tokens"))
    problem = the_problem(problems_of(catalog_dir), "gpt_tokens")
    assert "02_plans.json, body 1" in problem
    assert "charges.0.billable_metric_id" in problem


def test_a_filter_value_the_metric_does_not_declare_is_refused(catalog_dir):
    def change(d):
        d[0]["plan"]["charges"][0]["filters"][0]["values"]["model"] = ["mistral-tiny"]

    edit(catalog_dir / "02_plans.json", change)
    problem = the_problem(problems_of(catalog_dir), "mistral-tiny")
    assert "02_plans.json" in problem
    assert "body 1" in problem
    assert "charges.0.filters.0.values.model" in problem
    assert "mistral_tokens" in problem  # the metric it is not declared on


def test_a_filter_key_the_metric_does_not_declare_is_refused(catalog_dir):
    edit(catalog_dir / "02_plans.json",
         lambda d: d[1]["plan"]["charges"][0]["filters"][2]["values"].update(region=["eu"]))
    problem = the_problem(problems_of(catalog_dir), "region")
    assert "02_plans.json, body 2" in problem
    assert "charges.0.filters.2.values.region" in problem


def test_a_subscription_to_an_unknown_plan_is_refused(catalog_dir):
    edit(catalog_dir / "05_subscriptions.json", lambda d: d[2]["subscription"].update(plan_code="enterprise"))
    problem = the_problem(problems_of(catalog_dir), "enterprise")
    assert "05_subscriptions.json" in problem
    assert "body 3" in problem
    assert "field plan_code" in problem


def test_invalid_json_names_the_file_and_the_position(catalog_dir):
    (catalog_dir / "06_broken.json").write_text('{"plan": {"code": "x",}}')
    problem = the_problem(problems_of(catalog_dir), "06_broken.json")
    assert "not valid JSON" in problem
    assert "line 1" in problem


def test_an_unknown_timezone_is_refused(catalog_dir):
    edit(catalog_dir / "03_customers.json", lambda d: d[1]["customer"].update(timezone="Europe/Atlantis"))
    problem = the_problem(problems_of(catalog_dir), "Europe/Atlantis")
    assert "03_customers.json" in problem
    assert "body 2" in problem
    assert "field timezone" in problem


def test_a_missing_required_field_is_named(catalog_dir):
    edit(catalog_dir / "02_plans.json", lambda d: d[1]["plan"].pop("interval"))
    problem = the_problem(problems_of(catalog_dir), "field interval")
    assert "02_plans.json, body 2 (plan 'mistral_optimized_models')" in problem


def test_a_body_with_an_unknown_wrapper_is_named(catalog_dir):
    (catalog_dir / "06_coupon.json").write_text(json.dumps([{"coupon": {"code": "x"}}]))
    problem = the_problem(problems_of(catalog_dir), "06_coupon.json")
    assert "body 1" in problem


def test_every_reference_problem_is_reported_at_once(catalog_dir):
    edit(catalog_dir / "02_plans.json", lambda d: d[1]["plan"]["charges"][0].update(billable_metric_code="nope"))
    edit(catalog_dir / "05_subscriptions.json", lambda d: d[0]["subscription"].update(plan_code="ghost"))
    problems = problems_of(catalog_dir)
    the_problem(problems, "02_plans.json, body 2", "'nope'")
    the_problem(problems, "05_subscriptions.json, body 1", "'ghost'")


def test_an_empty_folder_is_not_a_catalog(tmp_path):
    problems = problems_of(tmp_path)
    assert "no *.json files" in problems[0]


# --- __ALL_FILTER_VALUES__ --------------------------------------------------------------------------


def test_all_filter_values_expands_to_the_values_the_metric_declares():
    declared = {"model": ["mistral-small", "mistral-medium", "mistral-large"], "type": ["input", "output"]}
    assert expand_filter_values({"model": ["__ALL_FILTER_VALUES__"], "type": ["output"]}, declared) == {
        "model": ["mistral-small", "mistral-medium", "mistral-large"],
        "type": ["output"],
    }


def test_repeated_filter_values_are_kept_once_in_order():
    assert expand_filter_values({"type": ["output", "input", "output"]}, {"type": ["input", "output"]}) == {
        "type": ["output", "input"]
    }


def test_all_filter_values_in_a_catalog_passes_the_checks_and_expands(catalog_dir):
    def change(d):
        d[1]["plan"]["charges"][0]["filters"] = [
            {"properties": {"amount": "5", "package_size": 1000000}, "values": {"model": ["__ALL_FILTER_VALUES__"], "type": ["input"]}}
        ]

    edit(catalog_dir / "02_plans.json", change)
    catalog = read_catalog(catalog_dir)
    (row,) = [r for r in tables.charge_filters(catalog) if r["charge_id"] == tables.charge_id("mistral_optimized_models", 0)]
    assert json.loads(row["filter_values_json"]) == {
        "model": ["mistral-small", "mistral-medium", "mistral-large"],
        "type": ["input"],
    }
    assert (row["key_count"], row["value_count"]) == (2, 4)  # 3 models + 1 type
    assert row["invoice_display_name"] == "mistral-small • mistral-medium • mistral-large • input"
    values = {r["value"] for r in tables.charge_filter_values(catalog) if r["charge_filter_id"] == row["charge_filter_id"]}
    assert values == {"mistral-small", "mistral-medium", "mistral-large", "input"}


# --- exact decimals from JSON numbers ----------------------------------------------------------------

_NUMBERS_CATALOG = """[
 {"billable_metric": {"name": "t", "code": "t", "aggregation_type": "sum_agg", "field_name": "tokens"}},
 {"plan": {"name": "p", "code": "p", "amount_cents": 0, "amount_currency": "USD", "interval": "monthly",
   "charges": [{"billable_metric_code": "t", "charge_model": "standard",
                "properties": {"amount": 0.00000123456789012345678}}]}},
 {"customer": {"external_id": "c"}},
 {"wallet": {"external_customer_id": "c", "currency": "USD", "rate_amount": 0.12345678901234567891}}
]"""

_FLOAT_BUG = (
    "BUG catalog.reader.read_catalog: json.loads is called without parse_float=Decimal, so a JSON "
    "number is parsed as a binary float before pydantic/tables see it; digits beyond ~17 significant "
    "figures are lost (0.12345678901234567891 -> 0.12345678901234568), contradicting models.py "
    "('a JSON float ... is read through its text, never kept as a binary float') and the semantics "
    "('never a binary float for money or units')."
)


def test_a_wallet_rate_written_as_a_json_number_keeps_every_digit(tmp_path):
    (tmp_path / "catalog.json").write_text(_NUMBERS_CATALOG.replace("0.00000123456789012345678", "2.7"))
    assert read_catalog(tmp_path).wallets[0].rate_amount == Decimal("0.12345678901234567891")


def test_a_charge_price_with_twelve_decimals_keeps_every_digit(tmp_path):
    (tmp_path / "catalog.json").write_text(_NUMBERS_CATALOG.replace("0.00000123456789012345678", "0.000001234567"))
    (charge,) = tables.charges(read_catalog(tmp_path))
    assert property_columns(charge["properties_json"])["p_amount"] == Decimal("0.000001234567")


def test_a_charge_price_with_more_than_twelve_decimals_is_refused_not_rounded(tmp_path):
    (tmp_path / "catalog.json").write_text(_NUMBERS_CATALOG)
    with pytest.raises(CatalogError) as error:
        read_catalog(tmp_path)
    assert "field charges.0.properties.amount" in str(error.value)
    assert "more than 12 decimals" in str(error.value)


def test_short_json_numbers_are_read_exactly(tmp_path):
    # the seed's JavaScript wallet writes numbers: 100.0, 25.0, 1.0; and prices like 2.7 must stay 2.7
    (tmp_path / "catalog.json").write_text(
        _NUMBERS_CATALOG.replace("0.00000123456789012345678", "2.7").replace("0.12345678901234567891", "0.1")
    )
    catalog = read_catalog(tmp_path)
    assert catalog.wallets[0].rate_amount == Decimal("0.1")
    (charge,) = tables.charges(catalog)
    assert property_columns(charge["properties_json"])["p_amount"] == Decimal("2.7")


@pytest.mark.parametrize(
    ("charge", "field", "message"),
    [
        ({"charge_model": "package", "properties": {"amount": "1", "package_size": 0}},
         "charges.0.properties.package_size", "must be a positive number"),
        ({"charge_model": "package", "properties": {"package_size": 1000}}, "charges.0.properties.amount", "required"),
        ({"charge_model": "standard", "properties": {"amount": "-1"}}, "charges.0.properties.amount", "non-negative"),
        ({"charge_model": "graduated", "properties": {"graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
            {"from_value": 11, "to_value": 5, "per_unit_amount": "1", "flat_amount": "0"},
            {"from_value": 6, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"}]}},
         "charges.0.properties.graduated_ranges.1.to_value", "ranges must increase"),
        ({"charge_model": "volume", "properties": {"volume_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"}]}},
         "charges.0.properties.volume_ranges.0.to_value", "the last range must be open"),
        ({"charge_model": "percentage", "properties": {"rate": "1", "per_transaction_max_amount": "-5"}},
         "charges.0.properties.per_transaction_max_amount", "non-negative"),
    ],
)
def test_charge_properties_that_cannot_be_billed_are_refused_with_their_field(tmp_path, charge, field, message):
    body = [
        {"billable_metric": {"name": "T", "code": "t", "aggregation_type": "sum_agg", "field_name": "v"}},
        {"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
                  "charges": [{"billable_metric_code": "t", **charge}]}},
    ]
    (tmp_path / "catalog.json").write_text(json.dumps(body))
    with pytest.raises(CatalogError) as error:
        read_catalog(tmp_path)
    (problem,) = error.value.problems
    assert f"catalog.json, body 2 (plan 'p'), field {field}" in problem
    assert message in problem


def test_a_wallet_in_another_currency_than_the_customer_is_refused(tmp_path):
    body = [
        {"customer": {"external_id": "c", "currency": "USD"}},
        {"wallet": {"external_customer_id": "c", "currency": "EUR", "rate_amount": "1"}},
    ]
    (tmp_path / "catalog.json").write_text(json.dumps(body))
    with pytest.raises(CatalogError, match=r"body 2 \(wallet 'c'\), field currency: EUR differs from the customer's billing currency USD"):
        read_catalog(tmp_path)


@pytest.mark.parametrize(
    ("bodies", "message"),
    [
        ([{"wallet_transaction": {"wallet_id": "w", "paid_credits": "10"}}], "field created_at: Field required"),
        ([{"wallet_transaction": {"wallet_id": "w", "created_at": "2026-10-01T00:00:00Z"}}],
         "needs paid_credits, granted_credits or voided_credits above 0"),
        ([{"wallet_transaction": {"wallet_id": "nope", "granted_credits": "1", "created_at": "2026-10-01T00:00:00Z"}}],
         "field wallet_id: no single wallet has the code (or external_customer_id/code) 'nope'"),
        ([{"billing_entity": {"code": "mistral", "eu_tax_management": True}}],
         "eu_tax_management needs `country`, the seller's EU member state"),
        ([{"billing_entity": {"code": "acme", "country": "US", "eu_tax_management": True}}],
         "eu_tax_management needs `country`"),
        ([{"tax": {"code": "vat", "name": "VAT", "rate": "120"}}], "field rate: Input should be less than or equal to 100"),
        ([{"customer": {"external_id": "c", "tax_codes": ["vat_99"]}}], "field tax_codes: unknown tax 'vat_99'"),
        ([{"billing_entity": {"code": "a"}}, {"billing_entity": {"code": "b"}}],
         "one billing entity per catalog is supported (the first is 'a')"),
    ],
)
def test_tax_entity_and_wallet_transaction_bodies_are_checked_with_their_field(tmp_path, bodies, message):
    (tmp_path / "catalog.json").write_text(json.dumps(bodies))
    with pytest.raises(CatalogError) as error:
        read_catalog(tmp_path)
    assert any(f"catalog.json, body {len(bodies)}" in p and message in p for p in error.value.problems), error.value.problems


def test_a_wallet_transaction_names_its_wallet_by_code_or_by_customer_and_code(tmp_path):
    bodies = [
        {"customer": {"external_id": "c1"}}, {"customer": {"external_id": "c2"}},
        {"wallet": {"external_customer_id": "c1", "currency": "USD", "rate_amount": "1", "code": "main"}},
        {"wallet": {"external_customer_id": "c2", "currency": "USD", "rate_amount": "1", "code": "main"}},
        {"wallet": {"external_customer_id": "c2", "currency": "USD", "rate_amount": "1", "code": "promo"}},
        {"wallet_transaction": {"wallet_id": "c1/main", "granted_credits": "5", "created_at": "2026-10-03T00:00:00Z"}},
        {"wallet_transaction": {"wallet_id": "promo", "voided_credits": "1", "created_at": "2026-10-04T00:00:00Z"}},
    ]
    (tmp_path / "catalog.json").write_text(json.dumps(bodies))
    catalog = read_catalog(tmp_path)
    assert [resolve_wallet(catalog, t.wallet_id).external_customer_id for t in catalog.wallet_transactions] == ["c1", "c2"]
    (tmp_path / "catalog.json").write_text(json.dumps([*bodies[:5], {"wallet_transaction": {
        "wallet_id": "main", "granted_credits": "5", "created_at": "2026-10-03T00:00:00Z"}}]))
    with pytest.raises(CatalogError, match="no single wallet has the code"):
        read_catalog(tmp_path)
    wallet = {"wallet": {"external_customer_id": "c1", "currency": "USD", "rate_amount": "1", "code": "main",
                         "created_at": "2026-10-02T00:00:00Z", "expiration_at": "2026-10-20T00:00:00Z"}}
    for day, problem in (("2026-10-01", "before the wallet's created_at"), ("2026-10-20", "on or after the wallet's expiration_at")):
        (tmp_path / "catalog.json").write_text(json.dumps([bodies[0], wallet, {"wallet_transaction": {
            "wallet_id": "main", "granted_credits": "5", "created_at": f"{day}T10:00:00Z"}}]))
        with pytest.raises(CatalogError, match=f"body 3 .*field created_at: {problem}"):
            read_catalog(tmp_path)


def test_every_empty_catalog_table_has_the_columns_of_a_full_one():
    # a catalog without billing entities (or wallets, ...) still writes each table, with the same columns
    from dagster_project.store.catalog_tables import EMPTY_SCHEMAS

    catalog = read_catalog(EXAMPLE)
    for name, schema in EMPTY_SCHEMAS.items():
        rows = tables.TABLES[name](catalog)
        if rows:
            assert set(schema) == set(rows[0]), name


# Coupons: Lago's CouponCreateInput and AppliedCouponInput bodies.
COUPON_CATALOG = [
    {"billable_metric": {"name": "Tokens", "code": "tokens", "aggregation_type": "sum_agg", "field_name": "n"}},
    {"plan": {"name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 1000, "amount_currency": "USD"}},
    {"customer": {"external_id": "acme", "currency": "USD"}},
    {"coupon": {"name": "Startup", "code": "startup", "coupon_type": "fixed_amount", "amount_cents": 5000,
                "amount_currency": "USD", "frequency": "once", "expiration": "time_limit",
                "expiration_at": "2026-10-31T23:59:59Z", "reusable": False}},
    {"coupon": {"name": "Tokens 10%", "code": "tok10", "coupon_type": "percentage", "percentage_rate": "10",
                "frequency": "recurring", "frequency_duration": 3, "expiration": "no_expiration",
                "applies_to": {"billable_metric_codes": ["tokens"]}}},
]


def _coupon_catalog(tmp_path: Path, *extra: dict) -> Path:
    (tmp_path / "catalog.json").write_text(json.dumps([*COUPON_CATALOG, *extra]))
    return tmp_path


def test_coupons_and_applied_coupons_become_tables_with_the_customers_overrides(tmp_path):
    catalog = read_catalog(_coupon_catalog(
        tmp_path,
        {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "startup", "amount_cents": 2500,
                            "created_at": "2026-10-05T10:00:00Z"}},
        {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "tok10", "percentage_rate": "12.5",
                            "frequency_duration": 2, "created_at": "2026-10-06T00:00:00Z"}},
    ))
    rows = tables.applied_coupons(catalog)
    assert [(r["coupon_code"], r["amount_cents"], r["amount_currency"], r["percentage_rate"], r["frequency"],
             r["frequency_duration"], r["billable_metric_codes_json"]) for r in rows] == [
        ("startup", 2500, "USD", None, "once", None, "[]"),
        ("tok10", None, None, "12.5", "recurring", 2, '["tokens"]'),
    ]
    assert [c["is_reusable"] for c in tables.coupons(catalog)] == [False, True]


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        ({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "startup",
                             "created_at": "2026-11-01T00:00:00Z"}},
         ("body 6 (applied_coupon 'acme'), field created_at", "expired at 2026-10-31T23:59:59Z")),
        ({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "nope", "created_at": "2026-10-01T00:00:00Z"}},
         ("field coupon_code: unknown coupon 'nope'",)),
        ({"applied_coupon": {"external_customer_id": "ghost", "coupon_code": "tok10", "created_at": "2026-10-01T00:00:00Z"}},
         ("field external_customer_id: unknown customer 'ghost'",)),
        ({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "startup", "amount_currency": "EUR",
                             "created_at": "2026-10-01T00:00:00Z"}},
         ("field amount_currency: the coupon's EUR differs from the customer's billing currency USD",)),
        ({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "tok10", "amount_cents": 100,
                             "created_at": "2026-10-01T00:00:00Z"}},
         ("field amount_cents: not used by a percentage coupon",)),
        ({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "startup", "frequency_duration": 2,
                             "created_at": "2026-10-01T00:00:00Z"}},
         ("field frequency_duration: only used by recurring coupons, not once",)),
        ({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "startup", "frequency": "recurring",
                             "created_at": "2026-10-01T00:00:00Z"}},
         ("field frequency_duration: a recurring coupon needs frequency_duration",)),
        ({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "tok10"}}, ("field created_at: Field required",)),
        ({"coupon": {"name": "X", "code": "x", "coupon_type": "percentage", "percentage_rate": "10", "frequency": "once",
                     "expiration": "no_expiration", "applies_to": {"plan_codes": ["pro"], "billable_metric_codes": ["tokens"]}}},
         ("field applies_to", "not both")),
        ({"coupon": {"name": "X", "code": "x", "coupon_type": "percentage", "percentage_rate": "10", "frequency": "once",
                     "expiration": "no_expiration", "applies_to": {"plan_codes": ["gold"]}}},
         ("field applies_to.plan_codes: unknown plan 'gold'",)),
        ({"coupon": {"name": "X", "code": "x", "coupon_type": "percentage", "percentage_rate": "120", "frequency": "once",
                     "expiration": "no_expiration"}}, ("field percentage_rate", "between 0 and 100")),
        ({"coupon": {"name": "X", "code": "x", "coupon_type": "fixed_amount", "frequency": "once",
                     "expiration": "no_expiration"}}, ("needs amount_cents and amount_currency",)),
        ({"coupon": {"name": "X", "code": "x", "coupon_type": "fixed_amount", "amount_cents": 1, "amount_currency": "USD",
                     "frequency": "recurring", "expiration": "no_expiration"}}, ("needs frequency_duration",)),
        ({"coupon": {"name": "X", "code": "x", "coupon_type": "fixed_amount", "amount_cents": 1, "amount_currency": "USD",
                     "frequency": "once", "expiration": "time_limit"}}, ("time_limit needs expiration_at",)),
        ({"coupon": {"name": "X", "code": "startup", "coupon_type": "percentage", "percentage_rate": "1",
                     "frequency": "once", "expiration": "no_expiration"}}, ("coupon code 'startup' is defined more than once",)),
        ({"coupon": {"name": "X", "code": "x", "coupon_type": "percentage", "percentage_rate": "1", "frequency": "once",
                     "expiration": "no_expiration", "limited_plans": True}}, ("unknown field 'limited_plans'",)),
    ],
)
def test_a_bad_coupon_or_applied_coupon_is_refused_by_file_body_and_field(tmp_path, extra, fragments):
    the_problem(problems_of(_coupon_catalog(tmp_path, extra)), *fragments)


def test_a_coupon_that_is_not_reusable_cannot_be_applied_twice_to_a_customer(tmp_path):
    applied = {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "startup",
                                  "created_at": "2026-10-01T00:00:00Z"}}
    the_problem(problems_of(_coupon_catalog(tmp_path, applied, applied)),
                "body 7 (applied_coupon 'acme'), field coupon_code: the coupon 'startup' is not reusable and is already "
                "applied to customer 'acme' by catalog.json, body 6")


EVERYONE_5 = {"coupon": {"name": "5 off", "code": "five", "coupon_type": "fixed_amount", "amount_cents": 500,
                         "amount_currency": "USD", "frequency": "once", "expiration": "no_expiration"}}


def test_a_reusable_coupon_may_be_applied_twice_the_same_day_and_each_keeps_its_own_id(tmp_path):
    # (a coupon without limitations: a limited one would overlap itself, see plan_overlapping below)
    applied = {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "five",
                                  "created_at": "2026-10-01T00:00:00Z"}}
    rows = tables.applied_coupons(read_catalog(_coupon_catalog(tmp_path, EVERYONE_5, applied, applied)))
    assert len({r["applied_coupon_id"] for r in rows}) == 2


# Lago's plan_overlapping: plan `chat` charges the `tokens` metric; `pro` charges nothing.
CHAT = {"plan": {"name": "Chat", "code": "chat", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
                 "charges": [{"billable_metric_code": "tokens", "charge_model": "standard", "properties": {"amount": "1"}}]}}


def _limited(code: str, **applies_to) -> dict:
    return {"coupon": {"name": code, "code": code, "coupon_type": "percentage", "percentage_rate": "5",
                       "frequency": "forever", "expiration": "no_expiration", "applies_to": applies_to}}


def _apply(code: str, day: str, customer: str = "acme") -> dict:
    return {"applied_coupon": {"external_customer_id": customer, "coupon_code": code, "created_at": f"{day}T00:00:00Z"}}


@pytest.mark.parametrize(("earlier", "later"), [
    (_limited("tok5", billable_metric_codes=["tokens"]), _limited("tok6", billable_metric_codes=["tokens"])),  # a metric of both
    (_limited("chat5", plan_codes=["chat"]), _limited("chat6", plan_codes=["chat"])),  # a plan of both
    (_limited("chat5", plan_codes=["chat"]), _limited("tok6", billable_metric_codes=["tokens"])),  # chat charges tokens
    (_limited("tok5", billable_metric_codes=["tokens"]), _limited("chat6", plan_codes=["chat"])),  # the other way round
], ids=["same_metric", "same_plan", "metric_charged_by_the_plan", "plan_charging_the_metric"])
def test_a_limited_coupon_overlapping_one_applied_before_is_refused_as_lagos_plan_overlapping(tmp_path, earlier, later):
    first, second = earlier["coupon"]["code"], later["coupon"]["code"]
    # written first but applied later (Oct 2): the one applied on Oct 1 stands, this one is refused
    problems = problems_of(_coupon_catalog(tmp_path, CHAT, earlier, later, _apply(second, "2026-10-02"),
                                           _apply(first, "2026-10-01")))
    assert problems == [
        f"catalog.json, body 9 (applied_coupon 'acme'), field coupon_code: the coupon {second!r} is limited to plans or "
        f"metrics that overlap those of coupon {first!r}, applied to customer 'acme' before by catalog.json, body 10 "
        f"(applied_coupon 'acme'): Lago refuses it while that coupon is active (plan_overlapping); Meterhouse does not "
        f"yet follow when a coupon stops being active, so it refuses the overlap"]


def test_coupons_that_do_not_overlap_or_belong_to_other_customers_are_applied(tmp_path):
    # pro charges no metric: a coupon on pro and one on tokens do not overlap; a coupon without
    # limitations overlaps nothing; the same limited coupon may be applied to two customers
    read_catalog(_coupon_catalog(
        tmp_path, CHAT, _limited("pro5", plan_codes=["pro"]), EVERYONE_5,
        {"customer": {"external_id": "globex", "currency": "USD"}},
        _apply("tok10", "2026-10-01"), _apply("pro5", "2026-10-02"), _apply("five", "2026-10-03"),
        _apply("tok10", "2026-10-01", customer="globex")))


# --- expression metrics ---------------------------------------------------------------------------


def _metric(document: dict | list) -> dict:
    return (document[0] if isinstance(document, list) else document)["billable_metric"]


def test_an_expression_that_cannot_be_parsed_is_refused_with_its_file_body_and_field(catalog_dir):
    edit(catalog_dir / "01_billable_metrics.json",
         lambda d: _metric(d).update(expression="event.properties.tokens * 1.1.1"))
    problem = the_problem(problems_of(catalog_dir), "expression")
    assert problem == ("01_billable_metrics.json, body 1 (billable_metric 'mistral_tokens'), field expression: "
                       "Value error, cannot be parsed: malformed number '1.1.1' at position 27 (digits, then an optional fraction) "
                       "(in 'event.properties.tokens * 1.1.1')")


def test_an_expression_on_a_count_metric_is_refused(catalog_dir):
    edit(catalog_dir / "01_billable_metrics.json",
         lambda d: _metric(d).update(aggregation_type="count_agg", field_name=None, expression="1"))
    the_problem(problems_of(catalog_dir), "01_billable_metrics.json, body 1", "every aggregation_type but count_agg")


def test_an_expression_metric_loads_the_properties_it_reads_and_keeps_its_text(catalog_dir):
    expression = "event.properties.input_tokens + round(event.properties.cached_tokens * 0.1)"
    edit(catalog_dir / "01_billable_metrics.json", lambda d: _metric(d).update(expression=expression))
    catalog = read_catalog(catalog_dir)
    assert {"cached_tokens", "input_tokens", "tokens"} <= set(tables.property_keys(catalog))
    (row,) = [r for r in tables.billable_metrics(catalog) if r["code"] == "mistral_tokens"]
    assert row["expression"] == expression


def test_a_blank_expression_is_no_expression_as_in_lago(catalog_dir):
    edit(catalog_dir / "01_billable_metrics.json", lambda d: _metric(d).update(expression=""))
    (row,) = [r for r in tables.billable_metrics(read_catalog(catalog_dir)) if r["code"] == "mistral_tokens"]
    assert row["expression"] is None
