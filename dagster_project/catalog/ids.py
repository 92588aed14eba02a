"""The ids of catalog entities: deterministic UUIDs of natural keys (`stable_id`), so that a rerun or
another machine gives the same ids. A plan's charges are keyed by the plan's code; the effective
plan of a subscription with `plan_overrides` (Lago's child plan) by its own plan id, since it keeps
its parent's code (`catalog/overrides.py`)."""

from __future__ import annotations

from dagster_project.billing.money import stable_id


def metric_id(code: str) -> str:
    return stable_id("billable_metric", code)


def plan_id(code: str) -> str:
    return stable_id("plan", code)


def charge_id(plan_key: str, index: int) -> str:
    return stable_id("charge", plan_key, index)


def charge_filter_id(plan_key: str, charge_index: int, filter_index: int) -> str:
    return stable_id("charge_filter", plan_key, charge_index, filter_index)


def overridden_plan_id(plan_code: str, external_subscription_id: str, subscription_at: object) -> str:
    """The id of the plan a subscription's `plan_overrides` make (one per subscription body, as Lago
    makes one child plan per subscription created with overrides)."""
    return stable_id("plan", plan_code, "plan_overrides", external_subscription_id, subscription_at or "")
