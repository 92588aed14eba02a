"""Price simulation: how an old usage bucket is carried to a candidate plan's filters, and the plan
file. The end-to-end simulation, with prices worked out by hand, is in tests/e2e/test_analytics.py."""

import json

import pytest

from dagster_project.analytics.simulation import SimulationError, SimulatedCustomer, _target_filter, load_plan, to_csv


def _filter(filter_id, values):
    return {"charge_filter_id": filter_id, "filter_values_json": json.dumps(values)}


CANDIDATES = [
    _filter("small", {"model": ["small"]}),
    _filter("large", {"model": ["large"]}),
    _filter("large_output", {"model": ["large"], "type": ["output"]}),
]


def test_a_bucket_goes_to_the_candidate_filter_matching_the_most_keys():
    assert _target_filter({"model": ["small"], "type": ["input"]}, CANDIDATES) == "small"
    assert _target_filter({"model": ["large"], "type": ["input"]}, CANDIDATES) == "large"
    assert _target_filter({"model": ["large"], "type": ["output"]}, CANDIDATES) == "large_output"


def test_a_bucket_no_candidate_filter_takes_goes_to_the_charge_default():
    assert _target_filter({"model": ["medium"], "type": ["input"]}, CANDIDATES) is None
    assert _target_filter(None, []) is None  # unfiltered usage, unfiltered candidate charge


def test_a_bucket_the_candidate_filters_would_split_is_refused():
    with pytest.raises(SimulationError, match="split"):
        _target_filter({"model": ["small", "large"]}, CANDIDATES)  # an old filter over both models
    with pytest.raises(SimulationError, match="split"):
        _target_filter(None, CANDIDATES)  # unfiltered usage: some events may be small, some large
    with pytest.raises(SimulationError, match="split"):
        _target_filter({"model": ["large"]}, CANDIDATES)  # large input and output together


def test_plan_file_and_csv(tmp_path):
    body = {"plan": {"code": "x", "name": "X", "amount_cents": 0, "amount_currency": "USD", "interval": "monthly", "charges": []}}
    (tmp_path / "wrapped.json").write_text(json.dumps(body))
    (tmp_path / "bare.json").write_text(json.dumps(body["plan"]))
    (tmp_path / "other.json").write_text(json.dumps({"customer": {"external_id": "c"}}))
    assert load_plan(tmp_path / "wrapped.json") == body == load_plan(tmp_path / "bare.json")
    with pytest.raises(SimulationError):
        load_plan(tmp_path / "other.json")
    row = SimulatedCustomer("2026-11", "alpha", "USD", "s_alpha", "pro", "x", 2600, 3300)
    assert to_csv([row]).splitlines() == [
        "period,external_customer_id,currency,subscriptions,old_plan_codes,new_plan_code,old_amount_cents,new_amount_cents,difference_cents",
        "2026-11,alpha,USD,s_alpha,pro,x,2600,3300,700",
    ]


def test_a_candidate_plan_that_prices_per_group_is_refused_by_name(tmp_path):
    """pricing_group_keys on the second charge and on a filter of the first: both named, nothing
    priced (the simulation prices each bucket as a whole)."""
    from dagster_project.analytics.simulation import grouped_charges, simulate

    plan = {"plan": {"code": "p", "charges": [
        {"properties": {"amount": "1"}, "filters": [{"properties": {"amount": "2", "pricing_group_keys": ["project"]}}]},
        {"properties": {"amount": "1", "pricing_group_keys": ["api_key"]}},
    ]}}
    assert grouped_charges(plan) == ["charges.0.filters.0", "charges.1"]
    with pytest.raises(SimulationError, match=r"charges\.0\.filters\.0\.properties\.pricing_group_keys, "
                                              r"charges\.1\.properties\.pricing_group_keys"):
        simulate(tmp_path / "none.duckdb", tmp_path, plan, "2026-10")
