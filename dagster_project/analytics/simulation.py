"""Price simulation: re-price a past billing month's usage under a candidate plan.

`simulate()` reads the warehouse read-only and never writes to it: real invoices are untouched.
The candidate plan is a Lago `{"plan": {...}}` body. With the code of an existing plan, it replaces
that plan for the subscriptions on it; with a new code, every subscription of the month is moved
to it. Either way the usage is the one already aggregated by dbt (`marts.fct_usage_daily`, the
events that arrived by each invoice's finalization day, as on the real invoices) and the pricing is
the billing code itself (`billing.invoicing.bill`), so charge models, package rounding, minimums,
commitments and prorated subscription fees follow the same rules as real invoices.

Usage is aggregated per (charge, charge filter) bucket, not per event, so each old bucket is
carried to the candidate plan's charges on the same billable metric by its filter values: to the
candidate filter that holds all its values for the most keys, or to the charge's default
properties when none does. A bucket whose events a candidate filter would split (an old filter
with several values of which only some are accepted, or unfiltered usage against a plan with
filters) cannot be carried without the events, and the simulation stops with
`SimulationError`. Merging several old buckets into one new bucket is exact for sums and counts.

Result: one row per customer and currency: the fees (excluding taxes) of the real invoices for the
periods starting in the month, the fees under the candidate plan, and the difference (new - old),
all in minor units.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from dagster_project.billing.invoicing import bill
from dagster_project.catalog import read_catalog, tables
from dagster_project.store.periods import periods_with_plans

CSV_COLUMNS = ["period", "external_customer_id", "currency", "subscriptions", "old_plan_codes", "new_plan_code",
               "old_amount_cents", "new_amount_cents", "difference_cents"]


class SimulationError(ValueError):
    """The simulation cannot be run as asked (unknown month, interval change, ambiguous buckets...)."""


@dataclass(frozen=True)
class SimulatedCustomer:
    period: str
    external_customer_id: str
    currency: str
    subscriptions: str
    old_plan_codes: str
    new_plan_code: str
    old_amount_cents: int
    new_amount_cents: int

    @property
    def difference_cents(self) -> int:
        return self.new_amount_cents - self.old_amount_cents

    def as_row(self) -> dict:
        return {c: getattr(self, c) for c in CSV_COLUMNS}


def load_plan(path: Path) -> dict:
    """The `{"plan": {...}}` body of a JSON file (a bare plan object is accepted too)."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(document, dict) and set(document) == {"plan"}:
        return document
    if isinstance(document, dict) and "code" in document and "charges" in document:
        return {"plan": document}
    raise SimulationError(f'{path}: expected a Lago plan body {{"plan": {{...}}}}')


def grouped_charges(plan_body: dict) -> list[str]:
    """Where the candidate plan prices per group (`pricing_group_keys` in a charge's or a filter's
    properties), as `charges.<i>` or `charges.<i>.filters.<j>`: the simulation prices the usage of
    a bucket as a whole, so such a plan is refused rather than priced without its groups."""
    found = []
    for i, charge in enumerate(plan_body["plan"].get("charges") or []):
        if (charge.get("properties") or {}).get("pricing_group_keys"):
            found.append(f"charges.{i}")
        found += [f"charges.{i}.filters.{j}" for j, f in enumerate(charge.get("filters") or [])
                  if (f.get("properties") or {}).get("pricing_group_keys")]
    return found


def _catalog_with(catalog_dir: Path, plan_body: dict):
    """The catalog as billed, with the candidate plan in place of the plan of the same code,
    checked as a whole by the catalog reader (so the plan gets the same checks as a real one)."""
    code = plan_body["plan"].get("code")
    bodies = []
    for path in sorted(Path(catalog_dir).glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for body in document if isinstance(document, list) else [document]:
            if isinstance(body, dict) and "plan" in body and isinstance(body["plan"], dict) and body["plan"].get("code") == code:
                continue
            bodies.append(body)
    bodies.append(plan_body)
    with tempfile.TemporaryDirectory(prefix="meterhouse-simulation-") as folder:
        (Path(folder) / "catalog.json").write_text(json.dumps(bodies), encoding="utf-8")
        return read_catalog(folder)


def _target_filter(old_values: dict[str, list[str]] | None, candidates: list[dict]) -> str | None:
    """The candidate filter all the events of an old bucket fall in (None: the charge's default).
    `old_values` is the old filter's key -> accepted values (None for unfiltered usage)."""
    full, partial = [], []
    for f in candidates:
        values = json.loads(f["filter_values_json"])
        status = "all"
        for key, accepted in values.items():
            held = (old_values or {}).get(key)
            if held is None:
                status = "some"  # the old bucket does not pin this key: some events may match
            elif not set(held) & set(accepted):
                status = "none"
                break
            elif not set(held) <= set(accepted):
                status = "some"
        if status == "all":
            full.append((len(values), f["charge_filter_id"]))
        elif status == "some":
            partial.append(f["charge_filter_id"])
    if partial:
        raise SimulationError(
            f"usage filtered by {old_values or 'no filter'} would be split by the candidate plan's filters: "
            "give the candidate plan filters that hold whole old filters"
        )
    if not full:
        return None
    full.sort(reverse=True)
    if len(full) > 1 and full[0][0] == full[1][0]:
        raise SimulationError(f"usage filtered by {old_values} matches several candidate filters equally")
    return full[0][1]


def _bucket_map(con, usage: pl.DataFrame, new_charges: pl.DataFrame, new_filters: pl.DataFrame) -> pl.DataFrame:
    """old (charge_id, filter key) -> new (charge_id, charge_filter_id), one row per candidate charge
    on the same billable metric (usage of a metric the candidate plan does not charge is dropped)."""
    old_charges = dict(con.execute("select charge_id, billable_metric_code from catalog.charges").fetchall())
    old_filters = {k: json.loads(v) for k, v in con.execute(
        "select charge_filter_id, filter_values_json from catalog.charge_filters").fetchall()}
    rows = []
    pairs = usage.select("charge_id", "charge_filter_id").unique().sort(["charge_id", "charge_filter_id"], nulls_last=False)
    for charge_id, filter_id in pairs.iter_rows():
        metric = old_charges[charge_id]
        old_values = old_filters[filter_id] if filter_id is not None else None
        for charge in new_charges.filter(pl.col("billable_metric_code") == metric).iter_rows(named=True):
            candidates = new_filters.filter(pl.col("charge_id") == charge["charge_id"]).to_dicts()
            rows.append({"charge_id": charge_id, "old_filter_key": filter_id or "default",
                         "new_charge_id": charge["charge_id"], "new_charge_filter_id": _target_filter(old_values, candidates)})
    return pl.DataFrame(rows, schema={"charge_id": pl.String, "old_filter_key": pl.String,
                                      "new_charge_id": pl.String, "new_charge_filter_id": pl.String})


def _relabel(frame: pl.DataFrame, mapping: pl.DataFrame) -> pl.DataFrame:
    columns = frame.columns
    return (
        frame.with_columns(old_filter_key=pl.col("charge_filter_id").fill_null("default"))
        .join(mapping, on=["charge_id", "old_filter_key"], how="inner")
        .with_columns(charge_id=pl.col("new_charge_id"), charge_filter_id=pl.col("new_charge_filter_id"))
        .select(columns)
    )


def _month_bounds(period: str) -> tuple[dt.date, dt.date]:
    try:
        first = dt.date.fromisoformat(f"{period}-01")
    except ValueError as exc:
        raise SimulationError(f"--period must be YYYY-MM, not {period!r}") from exc
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def simulate(warehouse: Path, catalog_dir: Path, plan_body: dict, period: str) -> list[SimulatedCustomer]:
    """Re-price the billing periods starting in `period` (YYYY-MM) under the candidate plan."""
    first, last = _month_bounds(period)
    if grouped := grouped_charges(plan_body):
        raise SimulationError(f"the candidate plan prices per group ({', '.join(f'{g}.properties.pricing_group_keys' for g in grouped)}): "
                              "the simulation does not price per group yet; remove pricing_group_keys to simulate without groups")
    catalog = _catalog_with(catalog_dir, plan_body)
    code = plan_body["plan"]["code"]
    plan_row = next(p for p in tables.plans(catalog) if p["code"] == code)
    new_charges = pl.DataFrame([c for c in tables.charges(catalog) if c["plan_id"] == plan_row["plan_id"]], infer_schema_length=None)
    charge_ids = set(new_charges["charge_id"].to_list()) if len(new_charges) else set()
    new_filters = pl.DataFrame([f for f in tables.charge_filters(catalog) if f["charge_id"] in charge_ids],
                               schema={"charge_filter_id": pl.String, "charge_id": pl.String, "filter_index": pl.Int64,
                                       "invoice_display_name": pl.String, "key_count": pl.Int64, "value_count": pl.Int64,
                                       "filter_values_json": pl.String, "properties_json": pl.String})
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        known = {r[0] for r in con.execute("select code from catalog.plans").fetchall()}
        periods = periods_with_plans(con)
        if code in known:
            periods = periods.filter(pl.col("plan_code") == code)
        target = periods.filter(pl.col("period_start_date").is_between(first, last))
        if target.is_empty():
            raise SimulationError(f"no billing period starts in {period}" + (f" on plan {code!r}" if code in known else ""))
        intervals = set(target["plan_interval"].to_list())
        if intervals != {plan_row["interval"]}:
            raise SimulationError(f"the candidate plan is {plan_row['interval']}, the periods are {sorted(intervals)}: "
                                  "periods cannot be re-cut")
        currencies = set(target["currency"].to_list())
        if currencies != {plan_row["currency"]}:
            raise SimulationError(f"the candidate plan is in {plan_row['currency']}, the subscriptions in {sorted(currencies)}")
        subscriptions = target["subscription_id"].unique().to_list()
        history = periods.filter(pl.col("subscription_id").is_in(subscriptions) & (pl.col("period_start_date") <= last))
        period_ids = history["billing_period_id"].to_list()
        usage = con.execute("select * from marts.fct_usage_daily").pl().filter(pl.col("billing_period_id").is_in(period_ids))
        events = con.execute("select * from marts.fct_charge_events").pl().filter(pl.col("billing_period_id").is_in(period_ids))
        mapping = _bucket_map(con, pl.concat([usage.select("charge_id", "charge_filter_id"),
                                              events.select("charge_id", "charge_filter_id")]), new_charges, new_filters)
        customers = con.execute("select * from catalog.customers").pl().filter(
            pl.col("customer_id").is_in(target["customer_id"].unique().to_list()))
        empty_wallets = con.execute("select * from catalog.wallets limit 0").pl()
        target_ids = target["billing_period_id"].to_list()
        old = con.execute(
            """select f.billing_period_id, f.amount_cents from billing.fees f
               join billing.invoices i using (invoice_id) where i.invoice_type = 'subscription'"""
        ).pl().filter(pl.col("billing_period_id").is_in(target_ids))
    old_plans = {r["billing_period_id"]: r["plan_code"] for r in target.iter_rows(named=True)}
    candidate = history.with_columns(
        plan_id=pl.lit(plan_row["plan_id"]), plan_code=pl.lit(code), amount_cents_plan=pl.lit(plan_row["amount_cents"]),
        minimum_commitment_cents=pl.lit(plan_row["minimum_commitment_cents"], dtype=pl.Int64),
        is_plan_pay_in_advance=pl.lit(plan_row["is_pay_in_advance"]),
    )
    through = max(target["invoice_finalized_on"].to_list()) + dt.timedelta(days=1)
    result = bill(
        through=through, usage=_relabel(usage, mapping), periods=candidate, charges=new_charges, filters=new_filters,
        customers=customers, wallets=empty_wallets,
        customer_sequences={cid: n for n, cid in enumerate(sorted(customers["customer_id"].to_list()), start=1)},
        number_prefix="SIM", charge_events=_relabel(events, mapping) if not events.is_empty() else None,
    )
    new = result.fees.filter(pl.col("billing_period_id").is_in(target_ids))
    old_by_period = dict(old.group_by("billing_period_id").agg(pl.col("amount_cents").sum()).iter_rows())
    new_by_period = dict(new.group_by("billing_period_id").agg(pl.col("amount_cents").sum()).iter_rows())
    grouped: dict[tuple[str, str], dict] = {}
    for r in target.sort("external_customer_id", "external_subscription_id").iter_rows(named=True):
        g = grouped.setdefault((r["external_customer_id"], r["currency"]), {"subs": [], "plans": set(), "old": 0, "new": 0})
        g["subs"].append(r["external_subscription_id"])
        g["plans"].add(old_plans[r["billing_period_id"]])
        g["old"] += int(old_by_period.get(r["billing_period_id"], 0))
        g["new"] += int(new_by_period.get(r["billing_period_id"], 0))
    return [
        SimulatedCustomer(period, customer, currency, " ".join(g["subs"]), " ".join(sorted(g["plans"])), code,
                          g["old"], g["new"])
        for (customer, currency), g in sorted(grouped.items())
    ]


def to_csv(rows: list[SimulatedCustomer]) -> str:
    """The simulation as CSV, one line per customer and currency, amounts in minor units."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.as_row())
    return buffer.getvalue()
