"""The inputs of a run, checked before anything is written (`pipeline.check_inputs`): a missing
folder, a bad catalog, or a run that would load no event stops it with every problem named."""

import datetime as dt

import pytest

from dagster_project.pipeline import InputProblems, check_inputs, folder_problem, no_events_problem
from tests.conftest import REPO

CATALOG = REPO / "tests" / "scenarios" / "eu_vat" / "catalog"
EVENTS = REPO / "tests" / "scenarios" / "eu_vat" / "events"  # 2026-10-10, 2026-11-03, 2026-11-05


def test_a_folder_that_is_missing_or_a_file_is_named_for_what_it_is(tmp_path):
    (tmp_path / "a-file").write_text("")
    assert folder_problem(tmp_path / "nothing-here") == "no such folder"
    assert folder_problem(tmp_path / "a-file") == "not a folder"
    assert folder_problem(tmp_path) is None


def test_no_arrival_day_or_a_billing_date_before_the_first_is_a_run_without_events():
    first = [dt.date(2026, 10, 10), dt.date(2026, 11, 3)]
    assert "no arrival-day folder (YYYY-MM-DD/)" in no_events_problem(EVENTS, [], dt.date(2026, 11, 2))
    assert no_events_problem(EVENTS, first, dt.date(2026, 10, 9)).startswith(
        "--through 2026-10-09 is before the first arrival day in")
    assert no_events_problem(EVENTS, first, dt.date(2026, 10, 10)) is None  # the first day itself is loaded
    assert no_events_problem(EVENTS, first, None) is None  # (check: every day)


def test_every_problem_is_reported_at_once(tmp_path):
    with pytest.raises(InputProblems) as raised:
        check_inputs(tmp_path / "no-catalog", tmp_path / "no-events", tmp_path / "no-payments", dt.date(2026, 11, 2))
    assert raised.value.problems == [
        f"--catalog {tmp_path / 'no-catalog'}: no such folder",
        f"--events {tmp_path / 'no-events'}: no such folder",
        f"--payments {tmp_path / 'no-payments'}: no such folder",
    ]


def test_an_empty_landing_folder_is_refused_unless_allowed(tmp_path):
    with pytest.raises(InputProblems) as raised:
        check_inputs(CATALOG, tmp_path, None, dt.date(2026, 11, 2))
    (problem,) = raised.value.problems
    assert problem.startswith(f"--events {tmp_path}: no arrival-day folder") and "--allow-no-events" in problem
    assert check_inputs(CATALOG, tmp_path, None, dt.date(2026, 11, 2), allow_no_events=True).arrival_days == []


def test_good_inputs_give_the_catalog_and_the_arrival_days():
    inputs = check_inputs(CATALOG, EVENTS, None, dt.date(2026, 11, 2))
    assert inputs.arrival_days == [dt.date(2026, 10, 10), dt.date(2026, 11, 3), dt.date(2026, 11, 5)]
    assert sorted(c.external_id for c in inputs.catalog.customers) == ["de_business", "de_consumer", "fr_consumer", "us_customer"]


def test_an_empty_day_folder_is_no_arrival_day(tmp_path):
    (tmp_path / "2026-11-01").mkdir()
    with pytest.raises(InputProblems) as excinfo:
        check_inputs(CATALOG, tmp_path)
    assert "no arrival-day folder (YYYY-MM-DD/) with an event file in it" in excinfo.value.problems[0]


def test_billing_past_the_last_events_is_said():
    from dagster_project.pipeline import quiet_since_problem

    days = [dt.date(2026, 10, 10), dt.date(2026, 11, 14)]
    assert quiet_since_problem(days, dt.date(2026, 11, 14)) is None
    assert quiet_since_problem(days, dt.date(2026, 11, 30)) == (
        "no event arrived after 2026-11-14 (the last arrival-day folder with events), but the run bills through "
        "2026-11-30: the invoices it finalizes hold no usage that arrived in between")


def test_a_catalog_the_warehouse_was_written_from_is_not_parsed_again(tmp_path, monkeypatch):
    import shutil

    import dagster_project.catalog
    from dagster_project.store.catalog_tables import catalog_digest

    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    accepted = catalog_digest(catalog)
    parsed = []
    real = dagster_project.catalog.read_catalog
    monkeypatch.setattr(dagster_project.catalog, "read_catalog", lambda folder: parsed.append(folder) or real(folder))
    # the same files: not parsed, no catalog handed to the run (its tables are up to date)
    assert check_inputs(catalog, EVENTS, None, dt.date(2026, 11, 2), accepted_catalog=accepted).catalog is None
    assert parsed == []
    # one byte changed in a file: parsed and checked again, and a bad field still refused
    bodies = catalog / "catalog.json"
    bodies.write_text(bodies.read_text().replace('"name": "Camille Martin", "country": "FR", "currency": "EUR"',
                                                  '"name": "Camille Martin", "country": "FR", "currency": "EURO"'))
    with pytest.raises(InputProblems) as raised:
        check_inputs(catalog, EVENTS, None, dt.date(2026, 11, 2), accepted_catalog=accepted)
    assert parsed == [catalog] and "currency" in raised.value.problems[0]
