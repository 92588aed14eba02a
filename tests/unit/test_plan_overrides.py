"""A subscription's `plan_overrides` merged into its effective plan (catalog/overrides.py), checked by
the catalog reader, and written as the catalog tables (one effective plan per overridden subscription).

The plan of these tests, `ai`: 100.00 USD a month, VAT 20% on the plan, a minimum commitment of
150.00, and two charges: `tokens` (package, 1,000,000 tokens a package, a filter per model:
small 1.00, large 4.00 a package) and `calls` (standard, 0.10 a call, 5.00 minimum a month).
"""

import json

import pytest

from dagster_project.catalog import CatalogError, read_catalog, tables
from dagster_project.catalog.ids import charge_id, metric_id, plan_id
from dagster_project.catalog.models import Plan, PlanOverrides
from dagster_project.catalog.overrides import OverrideError, effective_plan

PLAN = {
    "name": "AI", "code": "ai", "interval": "monthly", "amount_cents": 10000, "amount_currency": "USD",
    "tax_codes": ["vat20"], "minimum_commitment": {"amount_cents": 15000},
    "charges": [
        {"billable_metric_code": "tokens", "charge_model": "package",
         "filters": [
             {"invoice_display_name": "small", "values": {"model": ["small"]},
              "properties": {"amount": "1", "package_size": 1000000, "free_units": 0}},
             {"invoice_display_name": "large", "values": {"model": ["large"]},
              "properties": {"amount": "4", "package_size": 1000000, "free_units": 0}},
         ]},
        {"billable_metric_code": "calls", "charge_model": "standard", "properties": {"amount": "0.10"},
         "min_amount_cents": 500},
    ],
}


def _plan(body=PLAN) -> Plan:
    return Plan.model_validate(body)


def _merge(overrides: dict, plan: Plan | None = None) -> Plan:
    return effective_plan(plan or _plan(), PlanOverrides.model_validate(overrides))


def _problems(overrides: dict, plan: Plan | None = None) -> list[str]:
    with pytest.raises(OverrideError) as excinfo:
        _merge(overrides, plan)
    return excinfo.value.problems


def test_an_override_replaces_the_fields_it_gives_and_keeps_the_plans_others():
    got = _merge({"amount_cents": 50000, "name": "AI Enterprise", "trial_period": 14})
    assert (got.code, got.interval, got.amount_currency) == ("ai", "monthly", "USD")
    assert (got.amount_cents, got.name, got.trial_period) == (50000, "AI Enterprise", 14)
    # not given: the plan's taxes, minimum commitment and charges
    assert got.tax_codes == ["vat20"] and got.minimum_commitment == {"amount_cents": 15000}
    assert got.charges == _plan().charges


def test_taxes_and_the_minimum_commitment_given_replace_the_plans():
    got = _merge({"tax_codes": [], "minimum_commitment": {"amount_cents": 120000}})
    assert got.tax_codes == [] and got.minimum_commitment == {"amount_cents": 120000}
    assert got.amount_cents == 10000


def test_per_model_package_prices_negotiated_by_the_metric_replace_the_filters_of_that_charge_only():
    got = _merge({"charges": [{"billable_metric_id": "tokens", "filters": [
        {"invoice_display_name": "small", "values": {"model": ["small"]},
         "properties": {"amount": "0.5", "package_size": 1000000, "free_units": 0}},
        {"invoice_display_name": "large", "values": {"model": ["large"]},
         "properties": {"amount": "2", "package_size": 1000000, "free_units": 0}}]}]})
    tokens, calls = got.charges
    assert [(f.invoice_display_name, f.properties["amount"]) for f in tokens.filters] == [("small", "0.5"), ("large", "2")]
    assert (tokens.charge_model, tokens.metric_code) == ("package", "tokens")
    assert calls == _plan().charges[1]
    # the plan itself is untouched: the other subscriptions on it bill as before
    assert [f.properties["amount"] for f in _plan().charges[0].filters] == ["1", "4"]


def test_filters_given_are_the_whole_list_as_lagos_batch_service_keeps_only_those():
    got = _merge({"charges": [{"billable_metric_code": "tokens", "filters": [
        {"values": {"model": ["large"]}, "properties": {"amount": "3", "package_size": 1000000}}]}]})
    assert [f.values for f in got.charges[0].filters] == [{"model": ["large"]}]


def test_a_charge_named_by_its_id_gets_its_minimum_display_name_and_taxes():
    calls_id = charge_id("ai", 1)
    got = _merge({"charges": [{"id": calls_id, "min_amount_cents": 2500, "invoice_display_name": "Requests",
                               "tax_codes": ["vat10"], "properties": {"amount": "0.05"}}]})
    calls = got.charges[1]
    assert (calls.min_amount_cents, calls.invoice_display_name, calls.tax_codes, calls.properties) == (
        2500, "Requests", ["vat10"], {"amount": "0.05"})
    assert calls.charge_model == "standard"


def test_a_null_minimum_removes_the_charges_minimum_as_lago_sets_what_is_given():
    got = _merge({"charges": [{"billable_metric_code": "calls", "min_amount_cents": None}]})
    assert got.charges[1].min_amount_cents is None


def test_the_metrics_lago_id_names_a_charge_too():
    got = _merge({"charges": [{"billable_metric_id": metric_id("calls"), "properties": {"amount": "0.2"}}]})
    assert got.charges[1].properties == {"amount": "0.2"}


def test_two_charges_on_one_metric_make_the_metric_ambiguous_and_the_ids_are_named():
    body = json.loads(json.dumps(PLAN))
    body["charges"].append({"billable_metric_code": "calls", "charge_model": "standard", "properties": {"amount": "1"}})
    plan = _plan(body)
    assert _problems({"charges": [{"billable_metric_code": "calls", "properties": {"amount": "0.2"}}]}, plan) == [
        f"charges.0.billable_metric_code: plan 'ai' has 2 charges on metric 'calls', which is ambiguous: name the "
        f"charge by its id (charges.1 {charge_id('ai', 1)!r}, charges.2 {charge_id('ai', 2)!r})"]
    # by its id, the second one is overridden alone
    got = _merge({"charges": [{"id": charge_id("ai", 2), "properties": {"amount": "0.2"}}]}, plan)
    assert [c.properties for c in got.charges[1:]] == [{"amount": "0.10"}, {"amount": "0.2"}]


def test_an_override_naming_no_charge_of_the_plan_is_refused_by_field():
    assert _problems({"charges": [
        {"billable_metric_code": "images", "properties": {"amount": "1"}},
        {"id": "not-a-charge"},
        {"properties": {"amount": "1"}},
        {"id": charge_id("ai", 0), "billable_metric_code": "calls"},
    ]}) == [
        "charges.0.billable_metric_code: plan 'ai' has no charge on metric 'images'",
        f"charges.1.id: plan 'ai' has no charge 'not-a-charge' (its charges' ids: {charge_id('ai', 0)}, "
        f"{charge_id('ai', 1)})",
        "charges.2: names no charge: give the charge's id (its lago_id) or its billable_metric_id (or "
        "billable_metric_code)",
        f"charges.3.id: the charge {charge_id('ai', 0)!r} prices metric 'tokens', not 'calls'",
    ]


def test_one_charge_overridden_twice_and_another_charge_model_are_refused():
    assert _problems({"charges": [
        {"billable_metric_code": "calls", "properties": {"amount": "0.2"}},
        {"id": charge_id("ai", 1), "properties": {"amount": "0.3"}},
        {"billable_metric_code": "tokens", "charge_model": "standard", "properties": {"amount": "0.000001"}},
    ]}) == [
        "charges.1: overrides the same charge as charges.0 (plan 'ai', charges.1)",
        "charges.2.charge_model: 'standard' is not the plan's charge model 'package': an override keeps the "
        "plan's charge model (as Lago does)",
    ]
    # the plan's own model, repeated, is accepted
    assert _merge({"charges": [{"billable_metric_code": "calls", "charge_model": "standard"}]}).charges[1].charge_model == "standard"


def test_a_minimum_commitment_that_is_not_whole_cents_and_a_null_amount_are_refused():
    assert _problems({"amount_cents": None, "minimum_commitment": {"amount_cents": "150.00"}}) == [
        "minimum_commitment.amount_cents: '150.00' must be a non-negative integer (cents)",
        "amount_cents: a plan needs one (null is not an override)",
    ]


# --- through the catalog reader and the tables ---

BODIES = [
    {"billable_metric": {"name": "Tokens", "code": "tokens", "aggregation_type": "sum_agg", "field_name": "tokens",
                         "filters": [{"key": "model", "values": ["small", "large"]}]}},
    {"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}},
    {"tax": {"code": "vat20", "name": "VAT", "rate": "20"}},
    {"plan": PLAN},
    {"customer": {"external_id": "acme", "currency": "USD"}},
    {"customer": {"external_id": "globex", "currency": "USD"}},
    {"subscription": {"external_customer_id": "acme", "plan_code": "ai", "external_id": "s_acme",
                      "subscription_at": "2026-10-01T00:00:00Z"}},
]


def _catalog(tmp_path, overrides: dict):
    bodies = BODIES + [{"subscription": {"external_customer_id": "globex", "plan_code": "ai", "external_id": "s_globex",
                                         "subscription_at": "2026-10-01T00:00:00Z", "plan_overrides": overrides}}]
    (tmp_path / "catalog.json").write_text(json.dumps(bodies))
    return read_catalog(tmp_path)


def _catalog_problems(tmp_path, overrides: dict) -> list[str]:
    with pytest.raises(CatalogError) as excinfo:
        _catalog(tmp_path, overrides)
    return excinfo.value.problems


AT = "catalog.json, body 8 (subscription 's_globex'), field plan_overrides"


def test_the_catalog_names_the_file_body_and_field_of_a_bad_override(tmp_path):
    assert _catalog_problems(tmp_path, {"amount_currency": "XYZ", "tax_codes": ["gst"], "charges": [
        {"billable_metric_code": "tokens", "filters": [{"values": {"model": ["medium"]},
                                                        "properties": {"amount": "-1", "package_size": 1000000}}]},
        {"billable_metric_code": "calls", "tax_codes": ["vat10"], "properties": {"rate": "2"}},
    ]}) == [
        f"{AT}.amount_currency: unknown currency 'XYZ'",
        f"{AT}.tax_codes: unknown tax 'gst'",
        f"{AT}.charges.0.filters.0.values.model: value 'medium' is not declared on metric 'tokens'",
        f"{AT}.charges.0.filters.0.properties.amount: '-1' must be a non-negative number",
        f"{AT}.charges.1.tax_codes: unknown tax 'vat10'",
        f"{AT}.charges.1.properties.rate: not used by the standard charge model (it would be ignored: remove it)",
        f"{AT}.charges.1.properties.amount: required",
    ]


def test_an_override_in_another_currency_than_the_customers_is_refused(tmp_path):
    assert _catalog_problems(tmp_path, {"amount_currency": "EUR"}) == [
        f"{AT}.amount_currency: EUR differs from the customer's billing currency USD (its currency or its other plans')"]


def test_fields_lago_defines_and_meterhouse_does_not_bill_stay_refused_by_name(tmp_path):
    assert _catalog_problems(tmp_path, {"fixed_charges": [],
                                        "minimum_commitment": {"amount_cents": 1, "tax_codes": ["vat20"]}}) == [
        f"{AT}.fixed_charges: Lago's field 'fixed_charges' is not supported yet by Meterhouse",
        f"{AT}.minimum_commitment.tax_codes: Lago's field 'tax_codes' is not supported yet by Meterhouse",
    ]
    assert _catalog_problems(tmp_path, {"charges": [{"billable_metric_code": "calls", "charge_model": "dynamic"}]}) == [
        f"{AT}.charges.0.charge_model: Lago's charge_model 'dynamic' is not supported yet by Meterhouse"]


def test_the_overridden_subscription_gets_its_own_plan_and_the_other_keeps_the_plans_ids(tmp_path):
    catalog = _catalog(tmp_path, {"amount_cents": 50000, "minimum_commitment": {"amount_cents": 120000},
                                  "trial_period": 7,
                                  "charges": [{"billable_metric_code": "calls", "properties": {"amount": "0.05"}}]})
    subs = {s["external_id"]: s for s in tables.subscriptions(catalog)}
    assert subs["s_acme"]["plan_id"] == plan_id("ai")
    assert (subs["s_acme"]["trial_period_days"], subs["s_globex"]["trial_period_days"]) == (None, "7")
    child = subs["s_globex"]["plan_id"]
    assert child != plan_id("ai") and subs["s_globex"]["plan_code"] == "ai"
    plans = {p["plan_id"]: p for p in tables.plans(catalog)}
    assert [(p["code"], p["amount_cents"], p["minimum_commitment_cents"]) for p in plans.values()] == [
        ("ai", 10000, 15000), ("ai", 50000, 120000)]
    charges = {(c["plan_id"], c["billable_metric_code"]): c for c in tables.charges(catalog)}
    # the plan's charges keep their ids (catalogs without overrides bill byte-identically)
    assert charges[(plan_id("ai"), "calls")]["charge_id"] == charge_id("ai", 1)
    assert charges[(plan_id("ai"), "calls")]["properties_json"] == '{"amount": "0.10"}'
    assert charges[(child, "calls")]["properties_json"] == '{"amount": "0.05"}'
    assert charges[(child, "calls")]["charge_id"] not in {charge_id("ai", 0), charge_id("ai", 1)}
    filters = tables.charge_filters(catalog)
    assert len(filters) == 4 and len({f["charge_filter_id"] for f in filters}) == 4
    assert {f["charge_id"] for f in filters} == {charge_id("ai", 0), charges[(child, "tokens")]["charge_id"]}


def test_a_bad_override_is_reported_with_the_catalogs_other_problems_in_one_pass(tmp_path):
    bodies = BODIES + [
        {"customer": {"external_id": "initech", "currency": "USD", "tax_codes": ["gst"]}},
        {"subscription": {"external_customer_id": "globex", "plan_code": "ai", "external_id": "s_globex",
                          "plan_overrides": {"charges": [{"billable_metric_code": "images"}]}}},
    ]
    (tmp_path / "catalog.json").write_text(json.dumps(bodies))
    with pytest.raises(CatalogError) as excinfo:
        read_catalog(tmp_path)
    assert excinfo.value.problems == [
        "catalog.json, body 9 (subscription 's_globex'), field plan_overrides.charges.0.billable_metric_code: "
        "plan 'ai' has no charge on metric 'images'",
        "catalog.json, body 8 (customer 'initech'), field tax_codes: unknown tax 'gst'",
    ]


def test_the_http_apis_subscription_shows_the_amount_its_overrides_bill(tmp_path):
    """`meterhouse serve`'s subscription object: s_globex overrides the plan's 100.00 with 250.00,
    s_acme keeps 100.00; both keep the plan's code, as Lago's child plans do."""
    import datetime as dt

    from dagster_project.serve.objects import subscription_object

    catalog = _catalog(tmp_path, {"amount_cents": 25000})
    now = dt.datetime(2026, 10, 2, tzinfo=dt.timezone.utc)
    shown = {s.external_id: subscription_object(catalog, s, now) for s in catalog.subscriptions}
    assert {k: (v["plan_code"], v["plan_amount_cents"]) for k, v in shown.items()} == {
        "s_acme": ("ai", 10000), "s_globex": ("ai", 25000)}


# --- usage thresholds (progressive billing) ---

THRESHOLDS = [{"amount_cents": 10000, "threshold_display_name": "100 USD"}, {"amount_cents": 5000, "recurring": True}]


def test_an_overrides_usage_thresholds_replace_the_plans_whole_list_and_an_empty_one_keeps_them():
    plan = _plan({**PLAN, "usage_thresholds": THRESHOLDS})
    merged = _merge({"usage_thresholds": [{"amount_cents": 50000}]}, plan)
    assert [(t.amount_cents, t.recurring) for t in merged.usage_thresholds] == [(50000, False)]
    # Lago's `usage_thresholds.presence || plan.usage_thresholds`: an empty list is no override
    assert [(t.amount_cents, t.recurring) for t in _merge({"usage_thresholds": []}, plan).usage_thresholds] == [
        (10000, False), (5000, True)]


def test_the_usage_thresholds_table_holds_each_effective_plans_thresholds(tmp_path):
    bodies = [*BODIES[:3], {"plan": {**PLAN, "usage_thresholds": THRESHOLDS}}, *BODIES[4:]]
    (tmp_path / "catalog.json").write_text(json.dumps(bodies + [{"subscription": {
        "external_customer_id": "globex", "plan_code": "ai", "external_id": "s_globex",
        "subscription_at": "2026-10-01T00:00:00Z", "plan_overrides": {"usage_thresholds": [{"amount_cents": 2500}]}}}]))
    catalog = read_catalog(tmp_path)
    child = {s["external_id"]: s["plan_id"] for s in tables.subscriptions(catalog)}["s_globex"]
    rows = [(r["plan_id"], r["threshold_index"], r["amount_cents"], r["is_recurring"], r["threshold_display_name"])
            for r in tables.usage_thresholds(catalog)]
    assert rows == [(plan_id("ai"), 0, 10000, False, "100 USD"), (plan_id("ai"), 1, 5000, True, None),
                    (child, 0, 2500, False, None)]


def test_two_recurring_thresholds_a_repeated_amount_and_a_zero_amount_are_refused_by_field(tmp_path):
    bad = [{"amount_cents": 100}, {"amount_cents": 100}, {"amount_cents": 0},
           {"amount_cents": 50, "recurring": True}, {"amount_cents": 60, "recurring": True}]
    problems = _catalog_problems(tmp_path, {"usage_thresholds": bad})
    assert problems == [
        f"{AT}.usage_thresholds.2.amount_cents: Input should be greater than 0",
    ]
    problems = _catalog_problems(tmp_path, {"usage_thresholds": [t for t in bad if t["amount_cents"]]})
    assert problems == [
        f"{AT}: Value error, usage_thresholds.3.recurring: a plan has at most one recurring threshold "
        "(usage_thresholds.2 is one); usage_thresholds.1.amount_cents: 100 is already usage_thresholds.0's amount",
    ]


def test_a_coupon_for_a_customer_billed_progressively_is_refused_as_not_supported_yet(tmp_path):
    # Lago deducts the progressive invoices before the coupons; Meterhouse does not combine them yet.
    bodies = [*BODIES[:3], {"plan": {**PLAN, "usage_thresholds": THRESHOLDS}}, *BODIES[4:],
              {"coupon": {"name": "Welcome", "code": "welcome", "coupon_type": "fixed_amount", "amount_cents": 500,
                          "amount_currency": "USD", "frequency": "once", "expiration": "no_expiration"}},
              {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome",
                                  "created_at": "2026-10-05T00:00:00Z"}}]
    (tmp_path / "catalog.json").write_text(json.dumps(bodies))
    with pytest.raises(CatalogError) as excinfo:
        read_catalog(tmp_path)
    assert excinfo.value.problems == [
        "catalog.json, body 9 (applied_coupon 'acme'), field coupon_code: coupons for a customer billed progressively "
        "(subscription 's_acme' has usage_thresholds) are not supported yet by Meterhouse"]
