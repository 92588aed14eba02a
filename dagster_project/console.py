"""What `meterhouse run` and `meterhouse check` print for a person: one line per step with its
counts and time, a progress line while arrival days load, the invoices a run finalized, warnings.

The Dagster and dbt logs are not printed here: `capture_logs` sends them to a log file (and, with
`--verbose`, to the console as well). Everything that formats is a pure function, tested alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from dagster_project.billing.money import format_money

NAME_WIDTH = 14
DETAIL_WIDTH = 64
# Without a terminal, the progress of a load is printed as plain lines, at each quarter of the
# days, and only for loads of at least this many days (a month or more; a few days load in seconds).
PLAIN_PROGRESS_MIN_DAYS = 28


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """`1 plan`, `3 plans`, `12,345 events`."""
    return f"{n:,} {singular if n == 1 else plural_form or singular + 's'}"


money = format_money  # integer minor units as people read them (billing/money.py)


def step_line(name: str, detail: str, seconds: float | None = None) -> str:
    """`catalog       4 metrics, 3 plans, 3 customers          0.4 s`"""
    line = f"{name:<{NAME_WIDTH}}{detail}"
    if seconds is not None:
        line = f"{line:<{NAME_WIDTH + DETAIL_WIDTH}} {seconds:6.1f} s"
    return line.rstrip()


# ---- what each step says, from the metadata of the assets it materialized ------------------

CATALOG_COUNTS = (("billable_metrics", "metric"), ("plans", "plan"), ("customers", "customer"),
                  ("subscriptions", "subscription"), ("wallets", "wallet"), ("taxes", "tax", "taxes"),
                  ("coupons", "coupon"), ("applied_coupons", "applied coupon"),
                  ("webhook_endpoints", "webhook endpoint"), ("alerts", "alert"))


def describe_catalog(rows: dict[str, int]) -> str:
    """rows: catalog table -> rows. `4 metrics, 3 plans, 3 customers, 3 subscriptions` (wallets,
    taxes, coupons and applied coupons when there are any)."""
    parts = []
    for table, *words in CATALOG_COUNTS:
        n = rows.get(table, 0)
        if n or table in ("billable_metrics", "plans", "customers", "subscriptions"):
            parts.append(plural(n, *words))
    return ", ".join(parts)


def describe_payments(meta: dict) -> str:
    text = plural(meta.get("payments", 0), "payment")
    if meta.get("rejected"):
        text += f", {plural(meta['rejected'], 'row')} rejected"
    return text


def describe_events(arrival_days: int, meta: dict) -> str:
    """arrival_days: the day folders up to the billing date; meta: raw/events metadata (its days are
    every date from the first folder to the billing date, those without a folder included).
    `45 arrival days, 90 files and 12,345 events read (3 unreadable); 44 days unchanged, not read again`"""
    text = (f"{plural(arrival_days, 'arrival day')}, {plural(meta.get('files_loaded', 0), 'file')} and "
            f"{plural(meta.get('events_raw', 0), 'event')} read")
    if meta.get("events_malformed"):
        text += f" ({meta['events_malformed']:,} unreadable)"
    if meta.get("days_unchanged"):
        text += f"; {plural(meta['days_unchanged'], 'day')} unchanged, not read again"
    return text


def describe_outcomes(outcomes: dict) -> str:
    """`12,300 accepted, 12 duplicates, 3 rejected` (and late events when there are any)."""
    text = (f"{outcomes['accepted']:,} accepted, {plural(outcomes['duplicate'], 'duplicate')}, "
            f"{outcomes['rejected']:,} rejected")
    if outcomes.get("late"):
        text += f", {outcomes['late']:,} late"
    return text


def describe_pricing(rows: dict[str, int]) -> str:
    """rows: billing table -> rows."""
    return (f"{plural(rows.get('invoices', 0), 'invoice')}, {plural(rows.get('fees', 0), 'fee')}, "
            f"{plural(rows.get('wallet_transactions', 0), 'wallet transaction')}")


def describe_publish(meta: dict, out_dir: str, outbox: dict | None = None) -> str:
    """published_outputs metadata (the run summary's counts), and the webhooks the outbox took when
    the catalog has endpoints or alerts."""
    files = meta.get("invoices_finalized", 0) + meta.get("invoices_draft", 0)
    text = (f"{plural(files, 'invoice file')}, {plural(meta.get('invoice_documents', 0), 'document')} "
            f"({meta.get('documents_rendered', 0):,} rendered), "
            f"{plural(meta.get('current_usage_subscriptions', 0), 'usage file')}, "
            f"{plural(meta.get('wallets', 0), 'wallet')} in {out_dir}")
    if outbox and (outbox.get("webhook_messages") or outbox.get("alerts")):
        text += f"; {plural(outbox.get('webhooks_added', 0), 'webhook')} added to the outbox"
    return text


def invoice_lines(invoices, with_period: bool = False) -> list[str]:
    """One indented line per invoice (a `pipeline.Invoice`): number, customer, total due, aligned;
    `with_period`: the billing period too (for drafts, which have no number yet)."""
    rows = [(i.number, i.external_customer_id, money(i.total_amount_cents, i.currency),
             # the end date is the next period's start: its last day shown, as on the invoice document
             f"{i.period_start_date} to {i.period_end_date - dt.timedelta(days=1)}" if with_period and i.period_start_date else "")
            for i in invoices]
    widths = [max((len(r[c]) for r in rows), default=0) for c in range(3)]
    return [f"  {n:<{widths[0]}}  {c:<{widths[1]}}  {t:>{widths[2]}}  {p}".rstrip() for n, c, t, p in rows]


def finalized_report(finalized, dry_run: bool) -> list[str]:
    """What a run finalized (or a dry run would): each invoice's number is used up for good."""
    verb = "would finalize" if dry_run else "finalized"
    if not finalized:
        return [step_line("invoices", f"{verb} no invoice" + ("" if dry_run else " in this run"))]
    head = f"{verb} {plural(len(finalized), 'invoice')}" + ("" if dry_run else " in this run")
    return [step_line("invoices", head + " (number, customer, total due):"), *invoice_lines(finalized)]


def drafts_report(drafts) -> list[str]:
    if not drafts:
        return [step_line("drafts", "none")]
    return [step_line("drafts", f"{plural(len(drafts), 'invoice')} not finalized yet (total so far):"),
            *invoice_lines(drafts, with_period=True)]


def rejection_lines(rejections) -> list[str]:
    """One indented line per reason (a `pipeline.Rejections`): count and an example, then the
    other examples under it."""
    width = max((len(r.reason) for r in rejections), default=0)
    lines = []
    for r in rejections:
        first, *others = r.examples or [""]
        lines.append(f"  {r.reason:<{width}}  {r.count:>7,}  e.g. {first}".rstrip())
        lines.extend(f"  {'':<{width}}  {'':>7}       {example}" for example in others)
    return lines


def by_reason(rejections) -> str:
    """`invalid_json 2, unknown_subscription 1`"""
    return ", ".join(f"{r.reason} {r.count:,}" for r in rejections)


# Dagster step -> the line it is counted in. A step not listed (an asset check) counts in the line of
# the step before it. A line is printed when a step of another line starts, or the run ends.
PHASES = {
    "catalog": "catalog",
    "raw__payments": "payments",
    "raw__events": "events",
    "calendar__billing_periods": "usage models",
    "usage_models": "usage models",
    "priced_billing": "pricing",
    "billing_marts": "billing marts",
    "published_outputs": "publish",
    "outputs__revenue_report": "publish",
    "outputs__webhook_outbox": "publish",
}


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    steps: int = 0
    # asset path ("catalog/plans") -> its materialization metadata
    assets: dict[str, dict] = field(default_factory=dict)

    def describe(self, context: StepContext) -> str | None:
        """The line's text; None: a line not worth printing (payments without a payments folder)."""
        by_table = {path.split("/", 1)[1]: meta.get("rows", 0) for path, meta in self.assets.items() if "/" in path}
        if self.name == "catalog":
            return describe_catalog(by_table)
        if self.name == "payments":
            return describe_payments(self.assets.get("raw/payments", {})) if context.payments else None
        if self.name == "events":
            return describe_events(context.arrival_days, self.assets.get("raw/events", {}))
        if self.name in ("usage models", "billing marts"):
            models = [meta for path, meta in self.assets.items()
                      if path.split("/", 1)[0] in ("staging", "intermediate", "marts", "reference")]
            text = plural(len(models), "dbt model")
            if models and all(meta.get("unchanged") for meta in models):
                text += " unchanged, not run"
            if self.name == "usage models" and context.event_outcomes:
                text += f"; events {describe_outcomes(context.event_outcomes())}"
            return text
        if self.name == "pricing":
            return describe_pricing(by_table)
        if self.name == "publish":
            return describe_publish(self.assets.get("published_outputs", {}), context.out_dir,
                                    self.assets.get("outputs/webhook_outbox"))
        return plural(self.steps, "step")


@dataclass
class StepContext:
    out_dir: str
    payments: bool
    arrival_days: int = 0  # the day folders up to the billing date
    # the events accepted, duplicate, rejected and late so far (read from the warehouse)
    event_outcomes: Callable[[], dict] | None = None


class StepLines:
    """Receives the run's finished steps (the pipeline's observer) and prints one line per phase."""

    def __init__(self, console: Console, context: StepContext):
        self.console, self.context = console, context
        self.open: Phase | None = None
        self.printed: list[str] = []

    def step_done(self, step_key: str, seconds: float, assets: dict[str, dict]) -> None:
        name = PHASES.get(step_key, self.open.name if self.open else step_key)
        if self.open and self.open.name != name:
            self.flush()
        if self.open is None:
            self.open = Phase(name)
        self.open.seconds += seconds
        self.open.steps += 1
        self.open.assets.update(assets)

    def flush(self) -> None:
        """Print the open line (at the end of each of the pipeline's runs, and before another phase)."""
        if self.open is None:
            return
        phase, self.open = self.open, None
        detail = phase.describe(self.context)
        if detail is not None:
            self.console.line(step_line(phase.name, detail, phase.seconds))
            self.printed.append(phase.name)


# ---- progress ----------------------------------------------------------------------------------

def plain_progress_due(index: int, total: int) -> bool:
    """Without a terminal: a line when the load passes a quarter of its days (not the last day:
    the step line follows), for loads of at least PLAIN_PROGRESS_MIN_DAYS days."""
    if total < PLAIN_PROGRESS_MIN_DAYS or index >= total:
        return False
    return (4 * index) // total > (4 * (index - 1)) // total


def progress_text(step: str, index: int, total: int, label: str) -> str:
    return step_line(step, f"{index:,}/{plural(total, 'day')} loaded (last: {label})")


_progress: Callable[[str, int, int, str], None] | None = None


def report_progress(step: str, index: int, total: int, label: str) -> None:
    """Called by long steps (the day loop of `raw/events`) after each unit of work; shown only while
    a console is installed (`meterhouse run`), a no-op in the Dagster UI and the tests' runs."""
    if _progress is not None:
        _progress(step, index, total, label)


# ---- the console ---------------------------------------------------------------------------------

class Console:
    """Lines for a person on `out` (stdout, or stderr with `--json`); warnings and errors on stderr;
    the progress line on stderr, updated in place when stderr is a terminal."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.tty = self.err.isatty()
        self._progress_shown = False

    @classmethod
    def on_terminal(cls, lines_on_stderr: bool = False) -> Console:
        """A console writing to copies of the process's stdout and stderr, which `capture_logs`
        leaves alone; `lines_on_stderr`: the step lines on stderr too (`--json` keeps stdout for
        the JSON)."""
        err = open(os.dup(2), "w", buffering=1)  # noqa: SIM115 - lives as long as the process
        out = err if lines_on_stderr else open(os.dup(1), "w", buffering=1)  # noqa: SIM115
        return cls(out, err)

    def line(self, text: str = "") -> None:
        self._clear_progress()
        print(text, file=self.out, flush=True)

    def warning(self, text: str) -> None:
        self._clear_progress()
        print(f"warning: {text}", file=self.err, flush=True)

    def error(self, text: str) -> None:
        self._clear_progress()
        print(text, file=self.err, flush=True)

    def progress(self, step: str, index: int, total: int, label: str) -> None:
        if self.tty:
            self.err.write("\r\x1b[K" + progress_text(step, index, total, label))
            self.err.flush()
            self._progress_shown = True
        elif plain_progress_due(index, total):
            print(progress_text(step, index, total, label), file=self.err, flush=True)

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._progress_shown = False

    @contextlib.contextmanager
    def showing_progress(self) -> Iterator[None]:
        """Route `report_progress` to this console meanwhile."""
        global _progress
        previous, _progress = _progress, self.progress
        try:
            yield
        finally:
            _progress = previous
            self._clear_progress()

    @contextlib.contextmanager
    def capture_logs(self, log_file: Path, header: str, echo: bool = False) -> Iterator[None]:
        """Everything written to file descriptors 1 and 2 meanwhile (Dagster's logs, dbt's output,
        warnings, and the processes started meanwhile) goes to the end of `log_file`, after
        `header`; with `echo`, to the console's stderr as well. The console's own streams must be
        copies of the descriptors taken before (`Console.on_terminal`), so that its lines still
        reach the terminal."""
        sys.stdout.flush()
        sys.stderr.flush()
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        os.write(log, (header.rstrip("\n") + "\n").encode())
        saved = os.dup(1), os.dup(2)
        buffering = sys.stdout.line_buffering, sys.stderr.line_buffering
        for stream in (sys.stdout, sys.stderr):  # the log file line by line, as a terminal would get it
            stream.reconfigure(line_buffering=True)
        copier = None
        target = log
        if echo:
            read_end, target = os.pipe()
            copier = threading.Thread(target=_copy, args=(read_end, (log, saved[1])), daemon=True)
            copier.start()
        os.dup2(target, 1)
        os.dup2(target, 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            sys.stdout.reconfigure(line_buffering=buffering[0])
            sys.stderr.reconfigure(line_buffering=buffering[1])
            if copier is not None:
                os.close(target)
                copier.join(timeout=10)  # ends when the last process writing to the pipe has ended
            os.close(log)
            os.close(saved[0])
            os.close(saved[1])


def _copy(read_end: int, targets: tuple[int, ...]) -> None:
    with open(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(1 << 16):
            for fd in targets:
                with contextlib.suppress(OSError):
                    os.write(fd, chunk)
