"""A subscription's `plan_overrides`: the plan and the override merged into the subscription's own
effective plan, as Lago's `Plans::OverrideService` makes a child plan.

Lago copies the plan into a child plan (`parent_id`, the same `code`) and replaces, on the copy, the
fields the override gives: `amount_cents`, `amount_currency`, `name`, `invoice_display_name`,
`description`, `trial_period`, `tax_codes`, `minimum_commitment`, `usage_thresholds` (the whole
list, when it is not empty: Lago's `Subscription#applicable_usage_thresholds`); and on each charge the override
names (`Charges::OverrideService`), `properties`, `filters` (the whole list: Lago's batch service
keeps the filters given and removes the others), `min_amount_cents`, `invoice_display_name` and
`tax_codes`. The interval, the charge model, the metric and `pay_in_advance` are the plan's. A field
the override leaves out is the plan's (its taxes and minimum commitment included).

A batch catalog has no Lago ids to name a charge by, so an override names it by `id` (the charge's
`lago_id`, which the published invoices and `GET /plans` show) or by its metric
(`billable_metric_id` holding the metric's code or lago_id, or `billable_metric_code`), which is
enough when the plan has a single charge on that metric; more than one is ambiguous and refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster_project.catalog.ids import charge_id, metric_id
from dagster_project.catalog.models import Charge, ChargeOverride, Plan, PlanOverrides

# The plan fields an override replaces when it gives them (the key is present in its body).
PLAN_FIELDS = ("amount_cents", "amount_currency", "name", "invoice_display_name", "description", "trial_period",
               "tax_codes")
# The charge fields an override replaces when it gives them.
CHARGE_FIELDS = ("properties", "filters", "min_amount_cents", "invoice_display_name", "tax_codes")


class OverrideError(ValueError):
    """An override that cannot be merged; `problems` are `field path: message`, the paths under
    `plan_overrides`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class EffectivePlan:
    """A plan as billed: a catalog plan (`parent_plan_id` None, charges keyed by its code), or the
    effective plan of one subscription body with `plan_overrides` (its own `plan_id`, charges keyed
    by that id, the parent's `code`)."""

    plan_id: str
    charge_key: str
    plan: Plan
    parent_plan_id: str | None = None


def _names(override: ChargeOverride) -> str | None:
    """The metric an override names (code or lago_id), if it names one."""
    return override.billable_metric_code or override.billable_metric_id


def match_charges(plan: Plan, overrides: list[ChargeOverride]) -> dict[int, ChargeOverride]:
    """The index of the plan's charge each override names (see the module docstring). Every override
    must name exactly one charge, and no two the same one."""
    problems: list[str] = []
    matched: dict[int, ChargeOverride] = {}
    by_id = {charge_id(plan.code, index): index for index in range(len(plan.charges))}
    for o_index, override in enumerate(overrides):
        where = f"charges.{o_index}"
        metric = _names(override)
        on_metric = [index for index, charge in enumerate(plan.charges)
                     if metric in (charge.metric_code, metric_id(charge.metric_code))]
        if override.id is not None:
            if override.id not in by_id:
                problems.append(f"{where}.id: plan {plan.code!r} has no charge {override.id!r} (its charges' ids: "
                                f"{', '.join(by_id) or 'none'})")
                continue
            index = by_id[override.id]
            if metric is not None and index not in on_metric:
                problems.append(f"{where}.id: the charge {override.id!r} prices metric "
                                f"{plan.charges[index].metric_code!r}, not {metric!r}")
                continue
        elif metric is not None:
            field = "billable_metric_code" if override.billable_metric_code else "billable_metric_id"
            if not on_metric:
                problems.append(f"{where}.{field}: plan {plan.code!r} has no charge on metric {metric!r}")
                continue
            if len(on_metric) > 1:
                ids = ", ".join(f"charges.{i} {charge_id(plan.code, i)!r}" for i in on_metric)
                problems.append(f"{where}.{field}: plan {plan.code!r} has {len(on_metric)} charges on metric "
                                f"{metric!r}, which is ambiguous: name the charge by its id ({ids})")
                continue
            index = on_metric[0]
        else:
            problems.append(f"{where}: names no charge: give the charge's id (its lago_id) or its billable_metric_id "
                            f"(or billable_metric_code)")
            continue
        if index in matched:
            first = next(i for i, o in enumerate(overrides) if o is matched[index])
            problems.append(f"{where}: overrides the same charge as charges.{first} (plan {plan.code!r}, charges.{index})")
            continue
        model = override.charge_model
        if model is not None and model != plan.charges[index].charge_model:
            problems.append(f"{where}.charge_model: {model!r} is not the plan's charge model "
                            f"{plan.charges[index].charge_model!r}: an override keeps the plan's charge model (as Lago does)")
            continue
        matched[index] = override
    if problems:
        raise OverrideError(problems)
    return matched


def _given(body, fields: tuple[str, ...]) -> dict:
    """The fields a body gives (present in its JSON, even as null), with their values."""
    return {name: getattr(body, name) for name in fields if name in body.model_fields_set}


def override_charge(charge: Charge, override: ChargeOverride) -> Charge:
    """The charge with the fields the override gives. A `null` list stands for an empty one."""
    update = _given(override, CHARGE_FIELDS)
    for name in ("filters", "tax_codes"):
        if name in update and update[name] is None:
            update[name] = []
    return charge.model_copy(update=update)


def minimum_commitment_problems(overrides: PlanOverrides) -> list[str]:
    commitment = overrides.minimum_commitment
    if commitment is None:
        return []
    amount = commitment.get("amount_cents")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        return [f"minimum_commitment.amount_cents: {amount!r} must be a non-negative integer (cents)"]
    return []


def effective_plan(plan: Plan, overrides: PlanOverrides) -> Plan:
    """The plan a subscription with `overrides` bills with: the plan's fields, those the override
    gives replaced, its charges overridden one by one (`match_charges`). Raises `OverrideError`."""
    problems = minimum_commitment_problems(overrides)
    problems += [f"{name}: a plan needs one (null is not an override)" for name in ("amount_cents", "amount_currency", "name")
                 if name in overrides.model_fields_set and getattr(overrides, name) is None]
    try:
        matched = match_charges(plan, overrides.charges)
    except OverrideError as exc:
        problems += exc.problems
    if problems:
        raise OverrideError(problems)
    update = _given(overrides, PLAN_FIELDS)
    if update.get("tax_codes", []) is None:
        update["tax_codes"] = []
    if overrides.minimum_commitment:  # an empty object gives nothing, as in Lago (`present?`)
        update["minimum_commitment"] = dict(overrides.minimum_commitment)
    if overrides.usage_thresholds:  # replace the plan's whole list; empty or null keeps it (`presence`)
        update["usage_thresholds"] = list(overrides.usage_thresholds)
    update["charges"] = [override_charge(charge, matched[index]) if index in matched else charge
                         for index, charge in enumerate(plan.charges)]
    return plan.model_copy(update=update)
