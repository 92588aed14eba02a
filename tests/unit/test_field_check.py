"""Every field of a Lago body is honored or refused by name: a typo gets the nearest known name, a
Lago field Meterhouse does not implement is refused as not supported yet, nothing is dropped."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from dagster_project.catalog import CatalogError, read_catalog
from dagster_project.catalog.field_check import extensions, field_problems, not_supported
from dagster_project.catalog.lago_fields import FIELDS_FILE, from_openapi
from dagster_project.catalog.models import BODY_MODELS
from tests.conftest import OPENAPI, REPO

# One valid body of each kind, with one element in each nested list, so that any field path can be
# set on it.
BASE = {
    "billable_metric": {"name": "Tokens", "code": "tokens", "aggregation_type": "sum_agg", "field_name": "tokens",
                        "filters": [{"key": "model", "values": ["small"]}]},
    "plan": {"name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
             "minimum_commitment": {"amount_cents": 100},
             "charges": [{"billable_metric_code": "tokens", "charge_model": "standard", "properties": {"amount": "1"},
                          "filters": [{"values": {"model": ["small"]}, "properties": {"amount": "2"}}]}]},
    "customer": {"external_id": "acme", "billing_configuration": {"invoice_grace_period": 1}},
    "subscription": {"external_customer_id": "acme", "plan_code": "pro", "external_id": "sub_1"},
    "wallet": {"external_customer_id": "acme", "currency": "USD", "rate_amount": "1",
               "recurring_transaction_rules": [{"trigger": "threshold", "threshold_credits": "1"}]},
    "tax": {"code": "vat", "name": "VAT", "rate": "20"},
    "billing_entity": {"code": "seller", "billing_configuration": {"invoice_grace_period": 1}},
    "wallet_transaction": {"wallet_id": "w", "paid_credits": "1", "created_at": "2026-10-01T00:00:00Z"},
    "credit_note": {"invoice_id": "MTH-001-001", "items": [{"fee_id": "f", "amount_cents": 1}],
                    "credit_amount_cents": 1, "created_at": "2026-11-05T00:00:00Z"},
}


def with_field(body: dict, path: str, value="x") -> dict:
    """A copy of `body` with `value` at a dotted `path` (a list is entered at its first element;
    a missing object on the way is created)."""
    body = copy.deepcopy(body)
    node = body
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if isinstance(node, list):
            if not node:
                node.append({})
            node = node[0]
    node[last] = value
    return body


def test_the_base_bodies_have_nothing_to_refuse():
    for kind, body in BASE.items():
        assert field_problems(kind, BODY_MODELS[kind], body) == [], kind


def test_a_misspelled_granted_credits_is_refused_with_the_right_name():
    body = {**BASE["wallet"], "granted_credit": "25.0"}
    assert field_problems("wallet", BODY_MODELS["wallet"], body) == [
        "granted_credit: unknown field 'granted_credit' (did you mean 'granted_credits'?)"
    ]


def test_time_zone_on_a_customer_is_refused_as_a_misspelled_timezone():
    body = {**BASE["customer"], "time_zone": "Europe/Paris"}
    assert field_problems("customer", BODY_MODELS["customer"], body) == [
        "time_zone: unknown field 'time_zone' (did you mean 'timezone'?)"
    ]


def test_a_typo_deep_in_a_plan_is_named_by_its_whole_path():
    body = copy.deepcopy(BASE["plan"])
    body["charges"][0]["filters"][0]["propertes"] = {"amount": "2"}
    assert field_problems("plan", BODY_MODELS["plan"], body) == [
        "charges.0.filters.0.propertes: unknown field 'propertes' (did you mean 'properties'?)"
    ]


def test_a_name_far_from_every_field_lists_the_fields_of_its_level():
    body = {**BASE["tax"], "zzz": 1}
    (problem,) = field_problems("tax", BODY_MODELS["tax"], body)
    assert problem == "zzz: unknown field 'zzz' (known fields here: applied_to_organization, code, description, name, rate)"


# The fields the issue found silently ignored, each at the place a Lago user puts it.
NAMED_IN_THE_ISSUE = [
    ("plan", "charges.properties.grouped_by"),  # (pricing_group_keys, its new name, is priced since #24)
    ("plan", "charges.prorated"),
    ("plan", "fixed_charges"),
]


@pytest.mark.parametrize(("kind", "path"), NAMED_IN_THE_ISSUE)
def test_the_lago_fields_that_were_ignored_are_refused_as_not_supported_yet(kind, path):
    problems = field_problems(kind, BODY_MODELS[kind], with_field(BASE[kind], path))
    key = path.rsplit(".", 1)[-1]
    at = path.replace("charges.", "charges.0.")
    assert problems == [f"{at}: Lago's field {key!r} is not supported yet by Meterhouse"]


@pytest.mark.parametrize(("kind", "path"), [(k, p) for k, m in BODY_MODELS.items() for p in not_supported(k, m)])
def test_every_lago_field_meterhouse_does_not_implement_is_refused_by_name(kind, path):
    problems = field_problems(kind, BODY_MODELS[kind], with_field(BASE[kind], path))
    key = path.rsplit(".", 1)[-1]
    assert len(problems) == 1 and problems[0].endswith(f"Lago's field {key!r} is not supported yet by Meterhouse")


def test_the_unsupported_list_is_not_empty_and_holds_the_features_of_the_next_issues():
    unsupported = {f"{k}.{p}" for k, m in BODY_MODELS.items() for p in not_supported(k, m)}
    assert {"plan.fixed_charges", "subscription.plan_overrides.fixed_charges"} <= unsupported


def test_a_charge_model_lago_has_and_meterhouse_does_not_is_not_supported_yet():
    body = copy.deepcopy(BASE["plan"])
    body["charges"][0]["charge_model"] = "dynamic"
    assert field_problems("plan", BODY_MODELS["plan"], body) == [
        "charges.0.charge_model: Lago's charge_model 'dynamic' is not supported yet by Meterhouse"
    ]


def test_a_free_form_object_is_not_checked_key_by_key():
    # a charge filter's `values` holds the metric's filter keys, whatever they are called
    body = copy.deepcopy(BASE["plan"])
    body["charges"][0]["filters"][0]["values"] = {"any_key_at_all": ["small"]}
    assert field_problems("plan", BODY_MODELS["plan"], body) == []


def test_meterhouse_extensions_are_the_batch_fields_lago_has_no_use_for():
    assert extensions("subscription", BODY_MODELS["subscription"]) == [
        "terminated_at", "plan_overrides.charges.billable_metric_code"]
    assert extensions("plan", BODY_MODELS["plan"]) == ["charges.billable_metric_code"]


def _write(folder: Path, bodies: list[dict]) -> Path:
    folder.mkdir()
    (folder / "catalog.json").write_text(json.dumps(bodies))
    return folder


def _problems(folder: Path) -> list[str]:
    with pytest.raises(CatalogError) as excinfo:
        read_catalog(folder)
    return excinfo.value.problems


def test_the_catalog_names_the_file_the_body_and_the_field(tmp_path):
    folder = _write(tmp_path / "c", [{"customer": {"external_id": "acme"}},
                                      {"wallet": {**BASE["wallet"], "granted_credit": "25.0"}}])
    assert _problems(folder) == [
        "catalog.json, body 2 (wallet 'acme'), field granted_credit: unknown field 'granted_credit' "
        "(did you mean 'granted_credits'?)"
    ]


def test_invoiceable_false_is_refused_rather_than_invoiced(tmp_path):
    plan = copy.deepcopy(BASE["plan"])
    plan["charges"][0].update(pay_in_advance=True, invoiceable=False)
    folder = _write(tmp_path / "c", [{"billable_metric": BASE["billable_metric"]}, {"plan": plan}])
    assert _problems(folder) == [
        "catalog.json, body 2 (plan 'pro'), field charges.0.invoiceable: Lago's invoiceable false (a charge kept "
        "off invoices) is not supported yet by Meterhouse"
    ]


def test_a_customer_naming_another_billing_entity_is_refused(tmp_path):
    folder = _write(tmp_path / "c", [{"billing_entity": {"code": "seller"}},
                                      {"customer": {"external_id": "acme", "billing_entity_code": "other"}}])
    assert _problems(folder) == [
        "catalog.json, body 2 (customer 'acme'), field billing_entity_code: no billing entity 'other' in the "
        "catalog (the one billing entity is 'seller')"
    ]


def test_the_committed_field_lists_are_those_of_lagos_openapi_file():
    if not OPENAPI.exists():
        pytest.skip(f"{OPENAPI} is absent (it lives in ../shared beside the checkout)")
    assert json.loads(FIELDS_FILE.read_text()) == from_openapi(OPENAPI)


def _readme_list(heading: str) -> set[str]:
    """The dotted field paths listed in the README under a heading (up to the next heading)."""
    text = (REPO / "README.md").read_text()
    section = re.split(r"\n#+ ", text.split(f"### {heading}\n", 1)[1], maxsplit=1)[0]
    return set(re.findall(r"`([a-z_]+\.[a-z_.0-9]+)`", section))


def test_the_readme_lists_exactly_the_lago_fields_not_supported_yet():
    listed = _readme_list("Lago fields not supported yet")
    assert listed == {f"{k}.{p}" for k, m in BODY_MODELS.items() for p in not_supported(k, m)}


def test_the_readme_lists_exactly_the_meterhouse_extensions():
    listed = _readme_list("Fields Meterhouse adds")
    assert listed == {f"{k}.{p}" for k, m in BODY_MODELS.items() for p in extensions(k, m)}


def test_two_identical_credit_notes_are_refused_rather_than_merged(tmp_path):
    note = {"credit_note": BASE["credit_note"]}
    folder = _write(tmp_path / "c", [note, note])
    assert _problems(folder) == [
        "catalog.json, body 2 (credit_note 'MTH-001-001'): the same credit note as catalog.json, body 1 (credit_note "
        "'MTH-001-001') (same invoice, day, items, amounts, reason and description): a second note needs a description "
        "of its own"]


def test_a_key_written_twice_in_one_object_is_refused(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "wallets.json").write_text(
        '{"wallet": {"external_customer_id": "acme", "currency": "USD", "rate_amount": "1",'
        ' "granted_credits": "25", "granted_credits": "0"}}')
    assert _problems(tmp_path / "c") == [
        "wallets.json: the key 'granted_credits' appears twice in one object (JSON would keep the last value only)"]


def test_a_property_the_charge_model_does_not_read_is_refused(tmp_path):
    # free units on a standard charge: Lago ignores them, so would the bill
    plan = copy.deepcopy(BASE["plan"])
    plan["charges"][0]["properties"]["free_units"] = 1000000
    plan["charges"][0]["filters"][0]["properties"]["per_transaction_max_amount"] = "5"
    folder = _write(tmp_path / "c", [{"billable_metric": BASE["billable_metric"]}, {"plan": plan}])
    assert _problems(folder) == [
        "catalog.json, body 2 (plan 'pro'), field charges.0.properties.free_units: not used by the standard charge model "
        "(it would be ignored: remove it)",
        "catalog.json, body 2 (plan 'pro'), field charges.0.filters.0.properties.per_transaction_max_amount: not used by "
        "the standard charge model (it would be ignored: remove it)"]
