"""Usage no charge prices is named by its filter values, on the invoice line and in the warnings."""

from dagster_project.billing.unpriced import MAX_WARNINGS, summary_entries, unpriced_label, warnings


def test_an_unpriced_line_is_named_by_its_values_never_blank():
    assert unpriced_label([{"model": "codestral", "type": "input"}]) == "codestral • input (not priced)"
    assert unpriced_label([{"model": "codestral"}, {}]) == "codestral; no filter values (not priced)"
    assert unpriced_label([]) == "other values (not priced)"


def test_the_summary_adds_up_the_days_of_each_subscription_metric_and_values():
    rows = [
        {"external_subscription_id": "s1", "billable_metric_code": "tokens", "filter_values_json": '{"model":"x"}',
         "units": "1000000.000000000000", "events_count": 2},
        {"external_subscription_id": "s1", "billable_metric_code": "tokens", "filter_values_json": '{"model":"x"}',
         "units": "2500000.5", "events_count": 1},
        {"external_subscription_id": "s0", "billable_metric_code": "tokens", "filter_values_json": "{}",
         "units": "7", "events_count": 7},
    ]
    assert summary_entries(rows) == [
        {"external_subscription_id": "s0", "billable_metric_code": "tokens", "filter_values": {}, "units": "7",
         "events_count": 7},
        # 1,000,000 + 2,500,000.5 = 3,500,000.5 units in 2 + 1 events
        {"external_subscription_id": "s1", "billable_metric_code": "tokens", "filter_values": {"model": "x"},
         "units": "3500000.5", "events_count": 3},
    ]


def test_a_warning_says_how_much_what_where_and_that_it_billed_nothing():
    entry = {"external_subscription_id": "s1", "billable_metric_code": "tokens", "filter_values": {"model": "x", "type": "input"},
             "units": "3500000.5", "events_count": 1}
    assert warnings([entry]) == [
        "3,500,000.5 units of tokens on s1 (model x, type input, 1 event) match no charge filter and the charge has "
        "no price of its own: billed nothing (marts.fct_unpriced_usage)"
    ]


def test_many_unpriced_rows_are_summed_up_after_the_first_twenty():
    entries = [{"external_subscription_id": f"s{i:02d}", "billable_metric_code": "tokens", "filter_values": {},
                "units": "1", "events_count": 2} for i in range(MAX_WARNINGS + 5)]
    lines = warnings(entries)
    assert len(lines) == MAX_WARNINGS + 1
    assert lines[-1] == "... and 5 more unpriced usage rows (marts.fct_unpriced_usage)"
