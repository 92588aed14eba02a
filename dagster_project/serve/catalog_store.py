"""The catalog folder as the API's store: each created body is one more file, checked first exactly
as `meterhouse run` checks the catalog (`read_catalog`: Lago's fields, the models, the references).

A body the run would refuse is refused here, as Lago's 422 naming the field; a body accepted is
written whole (a temporary file, fsynced, renamed, the folder fsynced) before the answer, so the
catalog the next run reads holds it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from dagster_project.catalog import CatalogError, read_catalog
from dagster_project.catalog.reader import Catalog, wallet_key
from dagster_project.catalog.tables import metric_id
from dagster_project.billing.money import stable_id
from dagster_project.serve.lago_api import validation_errors

# The body a `POST` takes (its root name) for each catalog list, and the field that names it.
KINDS = {
    "billable_metric": ("billable_metrics", "code"),
    "plan": ("plans", "code"),
    "customer": ("customers", "external_id"),
    "subscription": ("subscriptions", "external_id"),
    "wallet": ("wallets", None),
    "wallet_transaction": ("wallet_transactions", None),
}
# The time of the call, where Lago takes it from its clock and the catalog needs it written down.
STAMPED_AT_CREATION = {"customer": "created_at", "wallet": "created_at", "wallet_transaction": "created_at",
                       "subscription": "subscription_at"}
_FIELD_PROBLEM = re.compile(r"^(?P<file>[^,]+), body \d+ \([^)]*\), field (?P<field>[^:]+): (?P<message>.*)$", re.S)


def with_catalog_ids(kind: str, body: dict, catalog: Catalog) -> dict:
    """The body with Lago's server ids turned into the codes the catalog files hold: a charge's
    `billable_metric_id` may be the metric's `lago_id` (what creating the metric returned, as the
    seed's plan uses it), a wallet transaction's `wallet_id` the wallet's `lago_id`."""
    body = json.loads(json.dumps(body))  # a copy
    if kind == "plan":
        codes = {metric_id(m.code): m.code for m in catalog.billable_metrics}
        for charge in body.get("charges") or []:
            if isinstance(charge, dict) and charge.get("billable_metric_id") in codes:
                charge["billable_metric_id"] = codes[charge["billable_metric_id"]]
    if kind == "wallet_transaction":
        keys = {stable_id("wallet", wallet_key(w)): wallet_key(w) for w in catalog.wallets}
        if body.get("wallet_id") in keys:
            body["wallet_id"] = keys[body["wallet_id"]]
    return body


def stamped(kind: str, body: dict, now: dt.datetime) -> dict:
    """The body with the time of the call where it has none (`STAMPED_AT_CREATION`): a subscription
    created without `subscription_at` starts now, as in Lago."""
    name = STAMPED_AT_CREATION.get(kind)
    if name and body.get(name) is None:
        return {**body, name: now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return body


def error_details(problems: list[str], file_name: str) -> dict[str, list[str]]:
    """`CatalogError` problems as Lago's `error_details`: the new body's problems by field, anything
    else (a reference across bodies) under `catalog`."""
    details: dict[str, list[str]] = {}
    for problem in problems:
        match = _FIELD_PROBLEM.match(problem)
        if match and match["file"] == file_name:
            details.setdefault(match["field"], []).append(match["message"])
        else:
            details.setdefault("catalog", []).append(problem.replace(file_name, "this body"))
    return details


def slug(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text or "body"))[:60].strip("-") or "body"


def write_durably(path: Path, data: bytes) -> None:
    """A temporary file beside `path`, written and fsynced, renamed over it, the folder fsynced: a
    crash leaves either the old state or the whole new file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


@dataclass(frozen=True)
class Created:
    catalog: Catalog  # the catalog with the new body
    model: object  # the new body's model
    file: Path


class CatalogStore:
    """The catalog folder, read once and again after each write, one writer at a time."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.catalog = self._read(self.folder)
        self.version = 0  # counts the writes: the refresh bills again after one

    @staticmethod
    def _read(folder: Path) -> Catalog:
        if not any(folder.glob("*.json")):
            return Catalog()
        return read_catalog(folder)

    def create(self, kind: str, body: dict, now: dt.datetime) -> Created:
        """Check `{kind: body}` with the whole catalog as `meterhouse run` would, then write it as a
        file of its own; Lago's 422 (`Refused`) naming the field otherwise."""
        if not isinstance(body, dict):
            raise validation_errors({kind: ["invalid_type"]})
        with self._lock:
            body = stamped(kind, with_catalog_ids(kind, body, self.catalog), now)
            existing = sorted(self.folder.glob("*.json"))
            name = f"api-{len(existing) + 1:05d}-{kind}-{slug(body.get(KINDS[kind][1]) if KINDS[kind][1] else now.strftime('%Y%m%dT%H%M%S%f'))}.json"
            data = (json.dumps({kind: body}, indent=2, ensure_ascii=False) + "\n").encode()
            with tempfile.TemporaryDirectory(prefix="meterhouse-catalog-") as scratch:
                for path in existing:
                    shutil.copyfile(path, Path(scratch) / path.name)
                (Path(scratch) / name).write_bytes(data)
                try:
                    catalog = read_catalog(scratch)
                except CatalogError as exc:
                    raise validation_errors(error_details(exc.problems, name)) from None
            write_durably(self.folder / name, data)
            self.catalog = catalog
            self.version += 1
            located = {str(where.file): model_id for model_id, where in catalog.where.items()}
            model = next(m for m in getattr(catalog, KINDS[kind][0]) if id(m) == located[name])
            return Created(catalog, model, self.folder / name)

    def created_at(self, model: object) -> dt.datetime:
        """When a body's file was written (its modification time): the `created_at` of a metric or a
        plan, which Lago's bodies cannot carry."""
        where = self.catalog.where.get(id(model))
        path = self.folder / where.file if where else None
        stamp = path.stat().st_mtime if path and path.exists() else 0
        return dt.datetime.fromtimestamp(int(stamp), dt.timezone.utc)
