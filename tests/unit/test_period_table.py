"""Which subscriptions' periods are derived again (`subscriptions_to_derive`), and what they are
derived from (`derivation_digest`)."""

import datetime as dt

import polars as pl

from dagster_project.billing.period_table import derivation_digest, subscriptions_to_derive


def _sub(sub_id: str, timezone: str = "UTC", **changes) -> dict:
    return {"subscription_id": sub_id, "external_id": f"ext_{sub_id}", "customer_id": f"c_{sub_id}",
            "subscription_at": dt.datetime(2026, 9, 15), "timezone": timezone, "interval": "monthly",
            "billing_time": "calendar", "terminated_at": None, **changes}


def test_a_subscription_is_derived_when_its_next_period_starts_on_or_before_the_horizon_s_local_day():
    subs = [_sub("a"), _sub("b"), _sub("ny", "America/New_York"), _sub("tokyo", "Asia/Tokyo"), _sub("new")]
    last_end = {"a": dt.date(2026, 11, 1), "b": dt.date(2026, 10, 31), "ny": dt.date(2026, 11, 1),
                "tokyo": dt.date(2026, 11, 2)}
    # horizon Nov 1 (UTC midnight): a's period ends that day (the next starts on it), b's before;
    # in New York midnight UTC is still Oct 31, so ny's period holds it; in Tokyo it is Nov 1 09:00,
    # before tokyo's period ends; "new" has no stored period
    assert subscriptions_to_derive(subs, last_end, dt.date(2026, 11, 1)) == {"a", "b", "new"}
    assert subscriptions_to_derive(subs, last_end, dt.date(2026, 10, 30)) == {"new"}


def _rows(*subs: dict) -> pl.DataFrame:
    return pl.DataFrame(list(subs))


def test_the_digest_changes_with_any_input_but_the_order_of_subscriptions():
    digest = derivation_digest(_rows(_sub("a"), _sub("b")), {"c_a": 0}, {})
    assert derivation_digest(_rows(_sub("b"), _sub("a")), {"c_a": 0}, {}) == digest
    assert derivation_digest(_rows(_sub("a"), _sub("b", terminated_at=dt.datetime(2026, 12, 1))), {"c_a": 0}, {}) != digest
    assert derivation_digest(_rows(_sub("a"), _sub("b")), {"c_a": 1}, {}) != digest
    assert derivation_digest(_rows(_sub("a"), _sub("b")), {"c_a": 0}, {"ext_a": dt.datetime(2026, 10, 2)}) != digest


def test_the_digest_tells_a_missing_value_from_an_empty_one_and_from_the_text_of_a_null():
    digests = {derivation_digest(_rows(_sub("a", external_id=value)), {}, {}) for value in (None, "", "\\N", "N")}
    assert len(digests) == 4
