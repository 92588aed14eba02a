"""Billing periods: calendar and anniversary, local midnights in the customer's timezone, DST."""

from __future__ import annotations

import datetime as dt

import pytest

from dagster_project.billing.periods import (
    billed_days,
    local_date,
    local_midnight_utc,
    period_bounds,
    subscription_periods,
)

NY = "America/New_York"
date = dt.date
utc = dt.datetime  # naive datetimes are UTC instants throughout


def monthly_ny(started_at: dt.datetime, through: dt.date, terminated_at: dt.datetime | None = None):
    return subscription_periods(
        interval="monthly", timezone=NY, billing_time="calendar",
        started_at=started_at, terminated_at=terminated_at, through=through,
    )


# --- local midnights and DST ----------------------------------------------------------------------


def test_october_2026_in_new_york_runs_from_four_am_utc_to_four_am_utc():
    # EDT is UTC-4 all of October: local midnight 2026-10-01 = 04:00Z; 2026-11-01 00:00 is still EDT
    # (DST ends at 02:00 local that day) = 04:00Z
    (october,) = monthly_ny(utc(2026, 10, 1, 4), through=date(2026, 10, 31))
    assert (october.start_date, october.end_date) == (date(2026, 10, 1), date(2026, 11, 1))
    assert october.start_at == utc(2026, 10, 1, 4, 0)
    assert october.end_at == utc(2026, 11, 1, 4, 0)
    assert october.days_in_period == 31


def test_november_2026_in_new_york_ends_at_five_am_utc_after_dst_ends():
    # 2026-12-01 00:00 is EST, UTC-5 -> 05:00Z; November is 30 days but 30 days + 1 hour in UTC
    october, november = monthly_ny(utc(2026, 10, 1, 4), through=date(2026, 11, 15))
    assert november.start_at == utc(2026, 11, 1, 4, 0)
    assert november.end_at == utc(2026, 12, 1, 5, 0)
    assert november.days_in_period == 30
    assert november.end_at - november.start_at == dt.timedelta(days=30, hours=1)
    assert october.end_at == november.start_at  # periods tile time with no gap or overlap


@pytest.mark.parametrize(
    ("day", "timezone", "expected"),
    [
        (date(2026, 11, 1), NY, utc(2026, 11, 1, 4)),  # EDT, UTC-4
        (date(2026, 11, 2), NY, utc(2026, 11, 2, 5)),  # EST, UTC-5
        (date(2026, 3, 8), NY, utc(2026, 3, 8, 5)),  # DST starts at 02:00 that day: midnight still EST
        (date(2026, 3, 9), NY, utc(2026, 3, 9, 4)),
        (date(2026, 10, 1), "Europe/Paris", utc(2026, 9, 30, 22)),  # CEST, UTC+2
        (date(2026, 10, 1), "UTC", utc(2026, 10, 1, 0)),
    ],
)
def test_local_midnight_in_utc(day, timezone, expected):
    assert local_midnight_utc(day, timezone) == expected


def test_an_event_at_two_am_utc_on_november_first_belongs_to_october_in_new_york():
    # 2026-11-01T02:00Z = 2026-10-31 22:00 EDT
    event = utc(2026, 11, 1, 2, 0)
    assert local_date(event, NY) == date(2026, 10, 31)
    assert local_date(event, "UTC") == date(2026, 11, 1)
    october, november = monthly_ny(utc(2026, 10, 1, 4), through=date(2026, 11, 30))
    assert october.start_at <= event < october.end_at
    assert not (november.start_at <= event < november.end_at)


# --- calendar billing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        (date(2026, 10, 21), date(2026, 10, 19), date(2026, 10, 26)),  # a Wednesday -> Monday 19th
        (date(2026, 10, 19), date(2026, 10, 19), date(2026, 10, 26)),  # a Monday starts its own week
        (date(2026, 10, 25), date(2026, 10, 19), date(2026, 10, 26)),  # a Sunday ends it
        (date(2027, 1, 1), date(2026, 12, 28), date(2027, 1, 4)),  # across the new year
    ],
)
def test_calendar_weeks_start_on_monday(day, start, end):
    assert period_bounds(day, "weekly") == (start, end)
    assert start.weekday() == 0


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        (date(2026, 2, 14), date(2026, 1, 1), date(2026, 4, 1)),
        (date(2026, 4, 1), date(2026, 4, 1), date(2026, 7, 1)),
        (date(2026, 8, 15), date(2026, 7, 1), date(2026, 10, 1)),
        (date(2026, 12, 31), date(2026, 10, 1), date(2027, 1, 1)),
    ],
)
def test_calendar_quarters_start_in_january_april_july_and_october(day, start, end):
    assert period_bounds(day, "quarterly") == (start, end)


@pytest.mark.parametrize(
    ("day", "interval", "start", "end"),
    [
        (date(2026, 2, 28), "monthly", date(2026, 2, 1), date(2026, 3, 1)),
        (date(2026, 12, 31), "monthly", date(2026, 12, 1), date(2027, 1, 1)),
        (date(2026, 8, 15), "semiannual", date(2026, 7, 1), date(2027, 1, 1)),
        (date(2026, 6, 30), "semiannual", date(2026, 1, 1), date(2026, 7, 1)),
        (date(2026, 8, 15), "yearly", date(2026, 1, 1), date(2027, 1, 1)),
    ],
)
def test_calendar_months_half_years_and_years(day, interval, start, end):
    assert period_bounds(day, interval) == (start, end)


# --- anniversary billing --------------------------------------------------------------------------


def test_anniversary_monthly_from_january_31st_clamps_to_february_28th():
    anchor = date(2026, 1, 31)  # 2026 is not a leap year
    assert period_bounds(date(2026, 1, 31), "monthly", anchor) == (date(2026, 1, 31), date(2026, 2, 28))
    assert period_bounds(date(2026, 2, 27), "monthly", anchor) == (date(2026, 1, 31), date(2026, 2, 28))
    # Feb 28 starts the next period, and the day after (Mar 1) is in it, up to Mar 31
    assert period_bounds(date(2026, 2, 28), "monthly", anchor) == (date(2026, 2, 28), date(2026, 3, 31))
    assert period_bounds(date(2026, 3, 1), "monthly", anchor) == (date(2026, 2, 28), date(2026, 3, 31))
    # then back to the 31st where the month has one, the 30th where it does not
    assert period_bounds(date(2026, 4, 15), "monthly", anchor) == (date(2026, 3, 31), date(2026, 4, 30))


def test_anniversary_monthly_from_january_31st_clamps_to_february_29th_in_a_leap_year():
    anchor = date(2028, 1, 31)
    assert period_bounds(date(2028, 2, 28), "monthly", anchor) == (date(2028, 1, 31), date(2028, 2, 29))
    assert period_bounds(date(2028, 2, 29), "monthly", anchor) == (date(2028, 2, 29), date(2028, 3, 31))


def test_anniversary_subscription_periods_from_january_31st_tile_the_year():
    periods = subscription_periods(
        interval="monthly", timezone="UTC", billing_time="anniversary",
        started_at=utc(2026, 1, 31, 10), terminated_at=None, through=date(2026, 4, 15),
    )
    assert [(p.start_date, p.end_date) for p in periods] == [
        (date(2026, 1, 31), date(2026, 2, 28)),  # 28 days
        (date(2026, 2, 28), date(2026, 3, 31)),  # 31 days
        (date(2026, 3, 31), date(2026, 4, 30)),  # 30 days
    ]
    assert [p.days_in_period for p in periods] == [28, 31, 30]


def test_anniversary_weekly_periods_start_on_the_subscription_weekday():
    anchor = date(2026, 10, 15)  # a Thursday
    assert period_bounds(date(2026, 10, 20), "weekly", anchor) == (date(2026, 10, 15), date(2026, 10, 22))


def test_anniversary_quarterly_from_november_30th():
    anchor = date(2026, 11, 30)
    # Nov 30 + 3 months = Feb 30 -> clamped to Feb 28, 2027
    assert period_bounds(date(2027, 1, 10), "quarterly", anchor) == (date(2026, 11, 30), date(2027, 2, 28))
    assert period_bounds(date(2027, 3, 1), "quarterly", anchor) == (date(2027, 2, 28), date(2027, 5, 30))


# --- partial periods and termination --------------------------------------------------------------


def test_a_subscription_starting_mid_october_bills_seventeen_days_of_thirty_one():
    # started 2026-10-15 00:00 EDT (04:00Z): Oct 15..31 inclusive = 31 - 15 + 1 = 17 days
    october, november = monthly_ny(utc(2026, 10, 15, 4), through=date(2026, 11, 15))
    assert october.charges_from == utc(2026, 10, 15, 4)
    assert october.start_at == utc(2026, 10, 1, 4)  # the period itself is still the whole month
    assert billed_days(october, NY) == 17
    assert october.days_in_period == 31
    assert billed_days(november, NY) == 30


def test_a_start_late_in_the_utc_day_counts_from_the_local_day():
    # 2026-10-15T02:00Z is 2026-10-14 22:00 EDT: Oct 14..31 = 18 days
    (october,) = monthly_ny(utc(2026, 10, 15, 2), through=date(2026, 10, 31))
    assert billed_days(october, NY) == 18


def test_subscription_periods_stop_at_termination():
    # terminated 2026-12-10T15:00Z = 10:00 EST on Dec 10: Oct and Nov whole, Dec 1..10 = 10 days
    periods = monthly_ny(utc(2026, 10, 1, 4), through=date(2027, 3, 31), terminated_at=utc(2026, 12, 10, 15))
    assert [p.start_date for p in periods] == [date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)]
    december = periods[-1]
    assert december.charges_to == utc(2026, 12, 10, 15)
    assert december.end_at == utc(2027, 1, 1, 5)  # the period keeps its end; charges stop early
    assert billed_days(december, NY) == 10


def test_a_termination_at_local_midnight_does_not_open_the_next_period():
    # terminated exactly at 2026-11-01 00:00 EDT = 04:00Z: October only, all 31 days
    periods = monthly_ny(utc(2026, 10, 1, 4), through=date(2026, 12, 31), terminated_at=utc(2026, 11, 1, 4))
    assert len(periods) == 1
    assert billed_days(periods[0], NY) == 31


def test_subscription_periods_stop_at_the_through_day():
    periods = monthly_ny(utc(2026, 10, 1, 4), through=date(2026, 12, 1))
    assert [p.start_date for p in periods] == [date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)]


def test_a_subscription_started_and_terminated_within_one_period_bills_the_days_between():
    # Oct 10 00:00 EDT (04:00Z) .. Oct 20 12:00 EDT (16:00Z): Oct 10..20 = 11 days
    (october,) = monthly_ny(utc(2026, 10, 10, 4), through=date(2026, 12, 31), terminated_at=utc(2026, 10, 20, 16))
    assert billed_days(october, NY) == 11
