"""Plan changes: an upgrade ends the old subscription at once, a downgrade waits for the end of the
period the change falls in (local midnight in the customer's timezone). Cases worked by hand."""

import datetime as dt

from dagster_project.billing.plan_changes import PlanTerm, resolve_plan_changes


def term(start, amount_cents, interval="monthly", billing_time="calendar", timezone="UTC", end=None, external_id="sub"):
    return PlanTerm(external_id=external_id, subscription_at=start, terminated_at=end, amount_cents=amount_cents,
                    interval=interval, billing_time=billing_time, timezone=timezone)


def bounds(terms):
    return [(t.subscription_at, t.terminated_at) for t in terms]


OCT_1, OCT_15 = dt.datetime(2026, 10, 1), dt.datetime(2026, 10, 15, 10, 30)


def test_an_upgrade_ends_the_old_plan_at_the_moment_the_new_one_starts():
    # 10.00 a month, then 20.00 a month from Oct 15 10:30: 240.00 > 120.00 a year, an upgrade
    assert bounds(resolve_plan_changes([term(OCT_1, 1000), term(OCT_15, 2000)])) == [
        (OCT_1, OCT_15), (OCT_15, None)]


def test_a_plan_as_expensive_counts_as_an_upgrade():
    assert bounds(resolve_plan_changes([term(OCT_1, 1000), term(OCT_15, 1000)])) == [(OCT_1, OCT_15), (OCT_15, None)]


def test_a_downgrade_starts_at_the_end_of_the_calendar_month_the_change_falls_in():
    # 20.00 then 10.00 a month: the change on Oct 15 takes effect on Nov 1 00:00 UTC
    nov_1 = dt.datetime(2026, 11, 1)
    assert bounds(resolve_plan_changes([term(OCT_1, 2000), term(OCT_15, 1000)])) == [(OCT_1, nov_1), (nov_1, None)]


def test_a_downgrade_waits_for_local_midnight_in_the_customers_timezone():
    # New York on Nov 1 2026 is still on EDT (UTC-4) at midnight (clocks go back at 2:00): 04:00 UTC.
    # The change at Oct 31 23:00 local (Nov 1 03:00 UTC) still falls in October there.
    start, change = dt.datetime(2026, 10, 1, 4), dt.datetime(2026, 11, 1, 3)
    ny = dict(timezone="America/New_York")
    nov_1_local = dt.datetime(2026, 11, 1, 4)
    assert bounds(resolve_plan_changes([term(start, 2000, **ny), term(change, 1000, **ny)])) == [
        (start, nov_1_local), (nov_1_local, None)]


def test_an_anniversary_downgrade_waits_for_the_subscriptions_own_period_end():
    # started Sep 10: its months run from the 10th, so a change on Oct 20 takes effect Nov 10
    sep_10, oct_20, nov_10 = dt.datetime(2026, 9, 10), dt.datetime(2026, 10, 20), dt.datetime(2026, 11, 10)
    changed = resolve_plan_changes([term(sep_10, 2000, billing_time="anniversary"), term(oct_20, 1000)])
    assert bounds(changed) == [(sep_10, nov_10), (nov_10, None)]


def test_plans_of_other_intervals_are_compared_by_their_price_per_year():
    # 100.00 a month is 1,200.00 a year; 1,000.00 a year is less: a downgrade, at the end of October
    nov_1 = dt.datetime(2026, 11, 1)
    changed = resolve_plan_changes([term(OCT_1, 10000), term(OCT_15, 100000, interval="yearly")])
    assert bounds(changed) == [(OCT_1, nov_1), (nov_1, None)]
    # 1,000.00 a year, then 100.00 a month: an upgrade, at once
    assert bounds(resolve_plan_changes([term(OCT_1, 100000, interval="yearly"), term(OCT_15, 10000)])) == [
        (OCT_1, OCT_15), (OCT_15, None)]


def test_an_end_already_before_the_change_is_kept():
    oct_10 = dt.datetime(2026, 10, 10)
    assert bounds(resolve_plan_changes([term(OCT_1, 1000, end=oct_10), term(OCT_15, 2000)])) == [
        (OCT_1, oct_10), (OCT_15, None)]


def test_a_chain_of_three_bodies_is_resolved_in_the_order_of_their_starts_and_returned_in_the_order_given():
    # given out of order: Nov 20 (30.00, upgrade of the Oct 15 body), Oct 1 (20.00), Oct 15 (10.00, a downgrade)
    nov_1, nov_20 = dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 20)
    changed = resolve_plan_changes([term(nov_20, 3000), term(OCT_1, 2000), term(OCT_15, 1000)])
    # the downgrade starts Nov 1; the upgrade of Nov 20 then ends it at once
    assert bounds(changed) == [(nov_20, None), (OCT_1, nov_1), (nov_1, nov_20)]


def test_subscriptions_with_other_external_ids_do_not_change_each_other():
    other = term(OCT_15, 500, external_id="other")
    assert bounds(resolve_plan_changes([term(OCT_1, 1000), other])) == [(OCT_1, None), (OCT_15, None)]


def test_a_body_without_a_start_is_the_first_of_its_chain():
    # undated (effective from the start of time), then a dearer plan from Oct 15: an upgrade
    assert bounds(resolve_plan_changes([term(OCT_15, 2000), term(None, 1000)])) == [(OCT_15, None), (None, OCT_15)]
