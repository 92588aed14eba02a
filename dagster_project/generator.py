"""Deterministic generator of LLM token-usage events, in Lago's event JSON, for the landing folder.

`generate_events` writes one folder per arrival date, `<out>/YYYY-MM-DD/events-0001.jsonl`, ...,
one JSON object per line. Every API request of a customer gives two events, its `input` tokens and
its `output` tokens, with the same subscription, model and timestamp:

    {"event":{"transaction_id":"tx-20250101-000000001","external_subscription_id":"sub_00042",
              "code":"mistral_tokens","timestamp":1735689601,
              "properties":{"tokens":912,"model":"mistral-small","type":"input"}}}

What makes the data realistic, and awkward on purpose:

* traffic is skewed: subscription weights follow a Zipf law over a shuffled ranking, so a few
  customers send most of the events; models are skewed to `mistral-small`;
* timestamps follow a daily profile (busy in the European and American afternoon), in order within
  the day, except ~2% of requests that happened up to a few hours before their arrival date;
* ~10% of requests are sent bare (`{...}`) instead of wrapped (`{"event": {...}}`);
* a `duplicate_share` of lines re-send, verbatim, a line written earlier: usually a recent one,
  sometimes one of the end of the previous arrival day (a retry after midnight);
* a `malformed_share` of lines are broken, in four kinds (see `MALFORMED_KINDS`): truncated JSON, a
  missing `transaction_id`, a non-numeric `tokens` ("lots"), a subscription id that does not exist.

The output depends only on the arguments: a seeded `random.Random`, integer arithmetic for the
daily profile, and no clock or hash randomisation. The split into files (`events_per_file`) does not
change the lines. Rerunning replaces the `events-*.jsonl` files of the days written, each file
being written under a temporary name and renamed when complete, so a rerun gives the same bytes.
Memory stays small whatever the volume: lines are written in chunks as they are made.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

__all__ = ["GeneratedStats", "MALFORMED_KINDS", "MODELS", "generate_events"]

MODELS = ("mistral-small", "mistral-medium", "mistral-large")
MODEL_WEIGHTS = (62, 27, 11)  # percent of requests
MALFORMED_KINDS = ("truncated_json", "missing_transaction_id", "non_numeric_tokens", "unknown_subscription")

ZIPF_EXPONENT = 1.1
BARE_SHARE = 0.10  # requests sent as a bare event object rather than {"event": {...}}
LATE_SHARE = 0.02  # requests that happened before their arrival date
LATE_MAX_SECONDS = 4 * 3600  # ... by at most this much
PREVIOUS_DAY_DUPLICATE_SHARE = 0.25  # duplicates re-sending a line of the previous arrival day
RECENT_LINES = 4096  # how far back a duplicate may reach
UNKNOWN_SUBSCRIPTIONS = 3  # distinct unknown subscription ids used by malformed lines

# Log-normal token counts, clamped to the range a request can have.
INPUT_TOKENS = (6.8, 1.0, 50, 20_000)  # mu, sigma (median ~900), min, max
OUTPUT_TOKENS = (5.5, 0.9, 10, 4_000)  # median ~250

# Relative traffic per UTC hour (integers, so the per-minute split is exact and portable).
HOURLY_PROFILE = (
    30, 25, 22, 20, 20, 24, 35, 55, 80, 100, 115, 125,
    130, 135, 140, 138, 130, 120, 105, 90, 75, 60, 48, 38,
)

FLUSH_LINES = 32_768  # lines per write
FILE_NAME = "events-{:04d}.jsonl"
FILE_GLOB = "events-*.jsonl"
_EPOCH = dt.date(1970, 1, 1)
_DUPLICATE, _MALFORMED = 1, 2


@dataclass(frozen=True)
class GeneratedStats:
    files: int
    events: int  # lines written, duplicates and malformed included
    duplicates: int
    malformed: int
    first_day: dt.date
    last_day: dt.date


def generate_events(
    out_dir: Path,
    *,
    subscriptions: int,
    days: int,
    start: dt.date,
    events_per_day: int,
    metric_code: str = "mistral_tokens",
    subscription_prefix: str = "sub_",
    duplicate_share: float = 0.002,
    malformed_share: float = 0.001,
    events_per_file: int = 1_000_000,
    seed: int = 7,
    bare_share: float = BARE_SHARE,
) -> GeneratedStats:
    """Write `days` arrival-date folders from `start`, each with `events_per_day` lines.

    Subscriptions are `f"{subscription_prefix}{i:05d}"` for i in 1..subscriptions. The numbers of
    duplicate and malformed lines of a day are `share * events_per_day`, rounded up or down at
    random, at random positions; the first lines ever written cannot be duplicates (there is
    nothing to re-send yet) and are written as ordinary events instead.
    """
    _check_arguments(
        subscriptions, days, start, events_per_day, metric_code, duplicate_share, malformed_share, events_per_file
    )
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    ctx = _Context(rng, subscriptions, metric_code, subscription_prefix, bare_share)
    minute_counts = _minute_counts(events_per_day)
    files = duplicates = malformed = 0
    previous_day_lines: list[str] = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        folder = out_dir / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        for stale in sorted(folder.glob(FILE_GLOB)) + sorted(folder.glob(".events-*.jsonl.partial")):
            stale.unlink()
        writer = _Writer(folder, events_per_file)
        try:
            day_duplicates, day_malformed, previous_day_lines = _write_day(
                ctx, writer, day, events_per_day, minute_counts, duplicate_share, malformed_share, previous_day_lines
            )
            writer.close()
        except BaseException:
            writer.abort()
            raise
        files += writer.files
        duplicates += day_duplicates
        malformed += day_malformed
    return GeneratedStats(
        files=files,
        events=days * events_per_day,
        duplicates=duplicates,
        malformed=malformed,
        first_day=start,
        last_day=start + dt.timedelta(days=days - 1),
    )


def _check_arguments(
    subscriptions: int,
    days: int,
    start: dt.date,
    events_per_day: int,
    metric_code: str,
    duplicate_share: float,
    malformed_share: float,
    events_per_file: int,
) -> None:
    if isinstance(start, dt.datetime) or not isinstance(start, dt.date):
        raise ValueError(f"start must be a date, not {start!r}")
    for name, value, low in (
        ("subscriptions", subscriptions, 1),
        ("days", days, 1),
        ("events_per_day", events_per_day, 0),
        ("events_per_file", events_per_file, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    if not isinstance(metric_code, str) or not metric_code:
        raise ValueError("metric_code must be a non-empty string")
    for name, share in (("duplicate_share", duplicate_share), ("malformed_share", malformed_share)):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be between 0 and 1, not {share!r}")
    if duplicate_share + malformed_share > 1:
        raise ValueError("duplicate_share + malformed_share must not exceed 1")


class _Context:
    """The random source and the precomputed JSON fragments shared by all days."""

    def __init__(self, rng: random.Random, subscriptions: int, metric_code: str, prefix: str, bare_share: float) -> None:
        self.rng = rng
        self.bare_share = bare_share
        self.code = json.dumps(metric_code)
        self.subscriptions = [json.dumps(f"{prefix}{i:05d}") for i in range(1, subscriptions + 1)]
        self.unknown_subscriptions = [
            json.dumps(f"{prefix}{i:05d}")
            for i in range(subscriptions + 1, subscriptions + 1 + UNKNOWN_SUBSCRIPTIONS)
        ]
        ranks = list(range(1, subscriptions + 1))
        rng.shuffle(ranks)  # the heaviest customer is not always sub_00001
        self.subscription_cum = list(accumulate(rank**-ZIPF_EXPONENT for rank in ranks))
        self.models = [json.dumps(m) for m in MODELS]
        self.model_cum = list(accumulate(MODEL_WEIGHTS))

    def subscription(self) -> str:
        cum = self.subscription_cum
        return self.subscriptions[bisect(cum, self.rng.random() * cum[-1], 0, len(cum) - 1)]

    def model(self) -> str:
        cum = self.model_cum
        return self.models[bisect(cum, self.rng.random() * cum[-1], 0, len(cum) - 1)]

    def tokens(self, spec: tuple[float, float, int, int]) -> int:
        mu, sigma, low, high = spec
        return min(high, max(low, int(self.rng.lognormvariate(mu, sigma))))


def _event_line(
    transaction_id: str | None,
    subscription: str,
    code: str,
    timestamp: int,
    tokens: str,
    model: str,
    kind: str,
    bare: bool,
) -> str:
    """One line; string arguments other than transaction_id and kind are JSON already."""
    tx = "" if transaction_id is None else f'"transaction_id":"{transaction_id}",'
    body = (
        f'{{{tx}"external_subscription_id":{subscription},"code":{code},"timestamp":{timestamp},'
        f'"properties":{{"tokens":{tokens},"model":{model},"type":"{kind}"}}}}'
    )
    return body if bare else f'{{"event":{body}}}'


def _minute_counts(events_per_day: int) -> list[int]:
    """How many lines each minute of the day gets, following HOURLY_PROFILE; they sum exactly."""
    weights = []
    for minute in range(1440):
        hour, into = divmod(minute, 60)
        weights.append(HOURLY_PROFILE[hour] * (60 - into) + HOURLY_PROFILE[(hour + 1) % 24] * into)
    cum = [0, *accumulate(weights)]
    total = cum[-1]
    bounds = [events_per_day * c // total for c in cum]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def _stochastic_round(rng: random.Random, value: float) -> int:
    whole = int(value)
    return whole + (rng.random() < value - whole)


def _write_day(
    ctx: _Context,
    writer: _Writer,
    day: dt.date,
    events_per_day: int,
    minute_counts: list[int],
    duplicate_share: float,
    malformed_share: float,
    previous_day_lines: list[str],
) -> tuple[int, int, list[str]]:
    """Write one arrival day; return its duplicate and malformed counts and its last lines."""
    rng = ctx.rng
    random_ = rng.random
    day_start = (day - _EPOCH).days * 86_400
    day_tag = day.strftime("%Y%m%d")
    code = ctx.code
    subscription, model, tokens = ctx.subscription, ctx.model, ctx.tokens

    n_duplicates = _stochastic_round(rng, events_per_day * duplicate_share)
    n_malformed = min(_stochastic_round(rng, events_per_day * malformed_share), events_per_day - n_duplicates)
    positions = rng.sample(range(events_per_day), n_duplicates + n_malformed)
    special = dict.fromkeys(positions[:n_duplicates], _DUPLICATE)
    special.update(dict.fromkeys(positions[n_duplicates:], _MALFORMED))

    recent: list[str] = []  # ring of the last RECENT_LINES well-formed lines
    ring_at = 0
    duplicates = malformed = 0
    sequence = 0  # transaction number within the day
    pending: str | None = None  # the output line of the last request, written next
    buffer = writer.buffer
    line_number = 0
    for minute, count in enumerate(minute_counts):
        minute_start = day_start + minute * 60
        for k in range(count):
            kind = special.get(line_number)
            line_number += 1
            if kind == _DUPLICATE and (recent or previous_day_lines):
                if previous_day_lines and (not recent or random_() < PREVIOUS_DAY_DUPLICATE_SHARE):
                    buffer.append(rng.choice(previous_day_lines))
                else:
                    buffer.append(rng.choice(recent))
                duplicates += 1
            elif kind == _MALFORMED:
                sequence += 1
                buffer.append(_malformed_line(ctx, f"tx-{day_tag}-{sequence:09d}", minute_start + k * 60 // count))
                malformed += 1
            else:
                if pending is not None:
                    line, pending = pending, None
                else:
                    timestamp = minute_start + k * 60 // count
                    if random_() < LATE_SHARE:
                        timestamp = day_start - rng.randint(60, LATE_MAX_SECONDS)
                    sub, mod, bare = subscription(), model(), random_() < ctx.bare_share
                    line = _event_line(
                        f"tx-{day_tag}-{sequence + 1:09d}", sub, code, timestamp,
                        str(tokens(INPUT_TOKENS)), mod, "input", bare,
                    )
                    pending = _event_line(
                        f"tx-{day_tag}-{sequence + 2:09d}", sub, code, timestamp,
                        str(tokens(OUTPUT_TOKENS)), mod, "output", bare,
                    )
                    sequence += 2
                buffer.append(line)
                if len(recent) < RECENT_LINES:
                    recent.append(line)
                else:
                    recent[ring_at] = line
                    ring_at = (ring_at + 1) % RECENT_LINES
            if len(buffer) >= writer.room:
                writer.flush()
                buffer = writer.buffer
    return duplicates, malformed, recent


def _malformed_line(ctx: _Context, transaction_id: str, timestamp: int) -> str:
    rng = ctx.rng
    kind = rng.choice(MALFORMED_KINDS)
    sub, mod, bare = ctx.subscription(), ctx.model(), rng.random() < ctx.bare_share
    tokens = str(ctx.tokens(INPUT_TOKENS))
    if kind == "missing_transaction_id":
        return _event_line(None, sub, ctx.code, timestamp, tokens, mod, "input", bare)
    if kind == "non_numeric_tokens":
        return _event_line(transaction_id, sub, ctx.code, timestamp, '"lots"', mod, "input", bare)
    if kind == "unknown_subscription":
        sub = rng.choice(ctx.unknown_subscriptions)
        return _event_line(transaction_id, sub, ctx.code, timestamp, tokens, mod, "input", bare)
    line = _event_line(transaction_id, sub, ctx.code, timestamp, tokens, mod, "input", bare)
    # Any proper prefix of a JSON object is invalid JSON: the closing brace is missing.
    return line[: rng.randint(10, len(line) - 1)]


class _Writer:
    """Lines of one day into events-0001.jsonl, events-0002.jsonl, ..., `events_per_file` each.

    The caller appends to `buffer` and calls `flush` once it holds `room` lines, so a write never
    crosses a file boundary. A file is written as `.events-NNNN.jsonl.partial` (which the loader's
    patterns ignore) and renamed when complete.
    """

    def __init__(self, folder: Path, events_per_file: int) -> None:
        self.folder = folder
        self.events_per_file = events_per_file
        self.files = 0
        self.buffer: list[str] = []
        self._handle = None
        self._partial: Path | None = None
        self._in_file = 0
        self.room = min(FLUSH_LINES, events_per_file)

    def flush(self) -> None:
        if not self.buffer:
            return
        if self._handle is None:
            self.files += 1
            self._partial = self.folder / f".{FILE_NAME.format(self.files)}.partial"
            self._handle = open(self._partial, "w", encoding="utf-8", newline="\n")
            self._in_file = 0
        self.buffer.append("")  # the last line ends with a newline too
        self._handle.write("\n".join(self.buffer))
        self._in_file += len(self.buffer) - 1
        self.buffer = []
        if self._in_file >= self.events_per_file:
            self._finish_file()
        self.room = min(FLUSH_LINES, self.events_per_file - self._in_file)

    def _finish_file(self) -> None:
        assert self._handle is not None and self._partial is not None
        self._handle.close()
        os.replace(self._partial, self.folder / FILE_NAME.format(self.files))
        self._handle, self._partial, self._in_file = None, None, 0

    def close(self) -> None:
        self.flush()
        if self._handle is not None:
            self._finish_file()

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            if self._partial is not None:
                self._partial.unlink(missing_ok=True)
            self._handle, self._partial = None, None
