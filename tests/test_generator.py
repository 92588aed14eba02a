"""The event generator: layout, determinism, idempotent reruns, and the content of the lines.

Counts of duplicate and malformed lines are recomputed from the files, independently of the
generator's code, and compared with what it reports.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dagster_project.generator import GeneratedStats, generate_events

START = dt.date(2025, 3, 30)
ARGS = dict(
    subscriptions=50,
    days=3,
    start=START,
    events_per_day=3001,  # odd, and share * events_per_day not whole: exercises the rounding
    duplicate_share=0.01,
    malformed_share=0.01,
    events_per_file=1200,
    seed=11,
)
MODELS = {"mistral-small", "mistral-medium", "mistral-large"}
LATE_LIMIT = 6 * 3600  # "a few hours" before the arrival day, with margin


def _day_start(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.timezone.utc).timestamp())


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _lines(root: Path) -> list[tuple[dt.date, str]]:
    """(arrival day, line) in writing order: days, then files, then lines."""
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        day = dt.date.fromisoformat(folder.name)
        for path in sorted(folder.glob("events-*.jsonl")):
            text = path.read_text(encoding="utf-8")
            assert text.endswith("\n")
            out.extend((day, line) for line in text[:-1].split("\n"))
    return out


@dataclass
class Census:
    events: list[tuple[dt.date, dict, bool]] = field(default_factory=list)  # day, event, wrapped
    malformed: Counter = field(default_factory=Counter)
    duplicates: int = 0
    cross_day_duplicates: int = 0
    unknown_subscriptions: set = field(default_factory=set)


def _census(root: Path, expected_subscriptions: set[str]) -> Census:
    """Classify every line without using the generator's code."""
    census = Census()
    first_seen: dict[tuple[str, str], tuple[dt.date, str]] = {}
    for day, line in _lines(root):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            census.malformed["truncated_json"] += 1
            continue
        assert isinstance(doc, dict)
        wrapped = set(doc) == {"event"}
        event = doc["event"] if wrapped else doc
        if "transaction_id" not in event:
            census.malformed["missing_transaction_id"] += 1
            continue
        tokens = event["properties"]["tokens"]
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            census.malformed["non_numeric_tokens"] += 1
            assert tokens == "lots"
            continue
        if event["external_subscription_id"] not in expected_subscriptions:
            census.malformed["unknown_subscription"] += 1
            census.unknown_subscriptions.add(event["external_subscription_id"])
            continue
        key = (event["external_subscription_id"], event["transaction_id"])
        if key in first_seen:
            first_day, first_line = first_seen[key]
            assert line == first_line, "a duplicate re-sends the earlier line verbatim"
            census.duplicates += 1
            census.cross_day_duplicates += first_day < day
            continue
        first_seen[key] = (day, line)
        census.events.append((day, event, wrapped))
    return census


def _expected_subscriptions(n: int, prefix: str = "sub_") -> set[str]:
    return {f"{prefix}{i:05d}" for i in range(1, n + 1)}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, GeneratedStats]:
    root = tmp_path_factory.mktemp("landing")
    return root, generate_events(root, **ARGS)


@pytest.fixture(scope="module")
def census(generated) -> Census:
    root, _ = generated
    return _census(root, _expected_subscriptions(ARGS["subscriptions"]))


def test_folder_layout(generated):
    root, stats = generated
    days = [START + dt.timedelta(days=i) for i in range(ARGS["days"])]
    assert sorted(p.name for p in root.iterdir()) == [d.isoformat() for d in days]
    assert (stats.first_day, stats.last_day) == (days[0], days[-1])
    files = 0
    for day in days:
        names = sorted(p.name for p in (root / day.isoformat()).iterdir())
        # 3001 lines at 1200 a file: 1200 + 1200 + 601, and no temporary file left behind
        assert names == ["events-0001.jsonl", "events-0002.jsonl", "events-0003.jsonl"]
        counts = [
            (root / day.isoformat() / name).read_bytes().count(b"\n") for name in names
        ]
        assert counts == [1200, 1200, 601]
        files += len(names)
    assert stats.files == files == 9
    assert stats.events == len(_lines(root)) == ARGS["days"] * ARGS["events_per_day"]


def test_same_seed_same_bytes_other_seed_other_bytes(generated, tmp_path):
    root, stats = generated
    again = generate_events(tmp_path / "again", **ARGS)
    assert again == stats
    assert _snapshot(tmp_path / "again") == _snapshot(root)
    generate_events(tmp_path / "other", **{**ARGS, "seed": 12})
    assert _snapshot(tmp_path / "other") != _snapshot(root)


def test_rerun_in_place_replaces_the_day_files(generated, tmp_path):
    root, stats = generated
    out = tmp_path / "landing"
    generate_events(out, **ARGS)
    foreign = out / START.isoformat() / "notes.txt"
    foreign.write_text("not ours")
    # A rerun with bigger files leaves no stale events-0002/0003 behind, and the same lines.
    bigger = generate_events(out, **{**ARGS, "events_per_file": 10_000})
    assert bigger.files == ARGS["days"]
    assert sorted(p.name for p in (out / START.isoformat()).glob("events-*")) == ["events-0001.jsonl"]
    assert _lines(out) == _lines(root)
    assert (bigger.events, bigger.duplicates, bigger.malformed) == (stats.events, stats.duplicates, stats.malformed)
    # Back to the first arguments: byte-identical to a fresh run; other files are left alone.
    assert generate_events(out, **ARGS) == stats
    assert foreign.read_text() == "not ours"
    foreign.unlink()
    assert _snapshot(out) == _snapshot(root)


def test_counts_match_the_files(generated, census):
    _, stats = generated
    assert sum(census.malformed.values()) == stats.malformed
    assert census.duplicates == stats.duplicates
    assert len(census.events) + stats.malformed + stats.duplicates == stats.events
    # share * 3001 = 30.01 a day, rounded up or down; the very first line cannot be a duplicate
    for count in (stats.duplicates, stats.malformed):
        assert abs(count - 0.01 * stats.events) <= ARGS["days"] + 1
    assert set(census.malformed) == {
        "truncated_json", "missing_transaction_id", "non_numeric_tokens", "unknown_subscription"
    }
    assert census.cross_day_duplicates > 0, "some duplicates arrive on a later day"
    assert census.duplicates > census.cross_day_duplicates, "most are re-sent the same day"


def test_well_formed_lines_are_lago_events(census):
    assert census.events
    transaction_ids = set()
    for day, event, _ in census.events:
        assert set(event) == {"transaction_id", "external_subscription_id", "code", "timestamp", "properties"}
        assert event["code"] == "mistral_tokens"
        assert isinstance(event["transaction_id"], str) and event["transaction_id"]
        transaction_ids.add(event["transaction_id"])
        timestamp = event["timestamp"]
        assert type(timestamp) is int
        assert _day_start(day) - LATE_LIMIT <= timestamp < _day_start(day) + 86_400
        props = event["properties"]
        assert set(props) == {"tokens", "model", "type"}
        assert props["model"] in MODELS
        assert type(props["tokens"]) is int
        if props["type"] == "input":
            assert 50 <= props["tokens"] <= 20_000
        else:
            assert props["type"] == "output"
            assert 10 <= props["tokens"] <= 4_000
    assert len(transaction_ids) == len(census.events), "transaction ids are unique"


def test_realistic_mix(census):
    n = len(census.events)
    late = sum(e["timestamp"] < _day_start(day) for day, e, _ in census.events)
    assert 0 < late < 0.1 * n, "a few events arrive the day after they happened"
    bare = sum(not wrapped for _, _, wrapped in census.events)
    assert 0.05 * n < bare < 0.15 * n
    models = Counter(e["properties"]["model"] for _, e, _ in census.events)
    assert models.most_common(1)[0][0] == "mistral-small"
    assert set(models) == MODELS
    types = Counter(e["properties"]["type"] for _, e, _ in census.events)
    assert abs(types["input"] - types["output"]) < 0.05 * n  # a request gives an input and an output
    inputs = sorted(e["properties"]["tokens"] for _, e, _ in census.events if e["properties"]["type"] == "input")
    outputs = sorted(e["properties"]["tokens"] for _, e, _ in census.events if e["properties"]["type"] == "output")
    assert inputs[len(inputs) // 2] > outputs[len(outputs) // 2]
    assert len(set(inputs)) > 500, "token counts vary"


def test_subscriptions_are_known_and_skewed(census):
    expected = _expected_subscriptions(ARGS["subscriptions"])
    per_subscription = Counter(e["external_subscription_id"] for _, e, _ in census.events)
    assert set(per_subscription) <= expected
    assert len(per_subscription) > 0.8 * len(expected)
    top_five = sum(count for _, count in per_subscription.most_common(5))
    assert top_five > 0.4 * len(census.events), "a few heavy users send most of the traffic"
    # the deliberately unknown ids look real but are beyond the last subscription
    assert census.unknown_subscriptions
    for sub in census.unknown_subscriptions:
        assert sub.startswith("sub_") and int(sub[4:]) > ARGS["subscriptions"]


def test_prefix_code_and_defaults(tmp_path):
    stats = generate_events(
        tmp_path, subscriptions=3, days=1, start=dt.date(2024, 12, 31), events_per_day=500,
        metric_code="llm_tokens", subscription_prefix="acme-",
    )
    assert stats.files == 1 and stats.events == 500
    census = _census(tmp_path, _expected_subscriptions(3, "acme-"))
    assert {e["code"] for _, e, _ in census.events} == {"llm_tokens"}
    assert {e["external_subscription_id"] for _, e, _ in census.events} <= {"acme-00001", "acme-00002", "acme-00003"}
    assert census.duplicates == stats.duplicates
    assert sum(census.malformed.values()) == stats.malformed


def test_no_events_makes_empty_day_folders(tmp_path):
    stats = generate_events(tmp_path, subscriptions=1, days=2, start=START, events_per_day=0)
    assert stats == GeneratedStats(0, 0, 0, 0, START, START + dt.timedelta(days=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2025-03-30", "2025-03-31"]
    assert not list(tmp_path.rglob("*.jsonl"))


@pytest.mark.parametrize(
    "override",
    [
        {"subscriptions": 0},
        {"days": 0},
        {"events_per_day": -1},
        {"events_per_file": 0},
        {"duplicate_share": -0.1},
        {"malformed_share": 1.5},
        {"duplicate_share": 0.6, "malformed_share": 0.6},
        {"start": dt.datetime(2025, 1, 1)},
        {"metric_code": ""},
    ],
)
def test_bad_arguments_are_refused(tmp_path, override):
    with pytest.raises(ValueError):
        generate_events(tmp_path, **{**ARGS, **override})
    assert not list(tmp_path.iterdir()), "nothing is written before the arguments are checked"


def test_with_no_bare_share_every_event_is_wrapped_as_lagos_postgres_path_reads_them(tmp_path):
    """bench/run.py --lago generates its files so: every line `{"event": {...}}`, none malformed."""
    generate_events(tmp_path, subscriptions=3, days=2, start=START, events_per_day=500, metric_code="ai_tokens",
                    malformed_share=0, bare_share=0)
    lines = [line for p in sorted(tmp_path.rglob("*.jsonl")) for line in p.read_text().splitlines()]
    assert len(lines) == 1000
    assert all(set(json.loads(line)) == {"event"} and json.loads(line)["event"]["code"] == "ai_tokens" for line in lines)
