"""What `meterhouse run` hears of Dagster's steps (`pipeline._StepEvents`): a step that Dagster
skips, because an asset it reads got no result, fails the run instead of leaving it a success with
the bills not made (Dagster counts a run with skipped steps as a success)."""

from types import SimpleNamespace

import dagster as dg

from dagster_project.pipeline import _StepEvents


def _event(step: str, kind: dg.DagsterEventType) -> SimpleNamespace:
    return SimpleNamespace(dagster_event=SimpleNamespace(step_key=step, event_type=kind))


def test_a_skipped_step_is_a_failure_of_the_run():
    steps = _StepEvents(observer=None)
    steps(_event("priced_billing", dg.DagsterEventType.STEP_START))
    steps(_event("billing_marts", dg.DagsterEventType.STEP_SKIPPED))
    assert steps.failures == [("billing_marts", "skipped: an asset it depends on was not materialized")]
    assert steps.refusals == []
