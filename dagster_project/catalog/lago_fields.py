"""The fields Lago defines for each request body, read from Lago's OpenAPI file.

`lago_fields.json` (beside this module) holds, for every body the catalog accepts, the tree of
field names of its `*CreateInput` schema (an object field or a list of objects has a subtree; any
other field is a leaf), and the allowed values of each enumerated field of a dozen values or
fewer (`MAX_ENUM_VALUES`), by dotted path. It is generated from the OpenAPI file and committed,
so that a user's machine needs no copy of it:

    python -m dagster_project.catalog.lago_fields ../shared/reference/lago-openapi/openapi.yaml

A test regenerates it from the file in place and compares (`tests/unit/test_field_check.py`).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

FIELDS_FILE = Path(__file__).with_name("lago_fields.json")
# Enumerations kept: the kinds of things (charge models, intervals, ...), not the lists of
# countries, currencies and time zones, which the catalog checks in its own way.
MAX_ENUM_VALUES = 12

# The wrapper key of each body, and the OpenAPI schema that defines it.
CREATE_INPUTS = {
    "billable_metric": "BillableMetricCreateInput",
    "plan": "PlanCreateInput",
    "customer": "CustomerCreateInput",
    "subscription": "SubscriptionCreateInput",
    "wallet": "WalletCreateInput",
    "tax": "TaxCreateInput",
    "billing_entity": "BillingEntityCreateInput",
    "wallet_transaction": "WalletTransactionCreateInput",
    "credit_note": "CreditNoteCreateInput",
    "coupon": "CouponCreateInput",
    "applied_coupon": "AppliedCouponInput",
    "webhook_endpoint": "WebhookEndpointCreateInput",
    "alert": "AlertCreateInput",
}


def _tree(schemas: dict, node, enums: dict, path: str, depth: int = 0) -> dict | None:
    """The field tree of an object schema (following `$ref`, merging `allOf`/`oneOf`/`anyOf`);
    None for a schema that is not an object with named properties (a leaf)."""
    while isinstance(node, dict) and "$ref" in node:
        node = schemas[node["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(node, dict) or depth > 16:
        return None
    if "items" in node:  # a list: the fields of its items
        return _tree(schemas, node["items"], enums, path, depth + 1)
    fields: dict | None = None
    for key in ("allOf", "oneOf", "anyOf"):
        for part in node.get(key, []):
            fields = _merge(fields, _tree(schemas, part, enums, path, depth + 1))
    if "properties" in node:
        fields = fields or {}
        for name, child in node["properties"].items():
            child_path = f"{path}.{name}"
            _record_enum(schemas, child, enums, child_path)
            fields[name] = _merge(fields.get(name), _tree(schemas, child, enums, child_path, depth + 1))
    return fields


def _record_enum(schemas: dict, node, enums: dict, path: str) -> None:
    while isinstance(node, dict) and "$ref" in node:
        node = schemas[node["$ref"].rsplit("/", 1)[-1]]
    if isinstance(node, dict) and "enum" in node:
        values = [v for v in node["enum"] if v is not None]
        if len(values) <= MAX_ENUM_VALUES:
            enums[path] = sorted(set(enums.get(path, [])) | set(values))


def _merge(a: dict | None, b: dict | None) -> dict | None:
    if a is None:
        return b
    if b is None:
        return a
    merged = dict(a)
    for name, child in b.items():
        merged[name] = _merge(merged.get(name), child)
    return merged


def _sorted(tree: dict | None) -> dict | None:
    return None if tree is None else {name: _sorted(tree[name]) for name in sorted(tree)}


def from_openapi(openapi: Path) -> dict:
    """{"fields": {kind: tree}, "enums": {"kind.path": [values]}} from Lago's OpenAPI file."""
    import yaml

    schemas = yaml.safe_load(Path(openapi).read_text(encoding="utf-8"))["components"]["schemas"]
    enums: dict[str, list] = {}
    fields = {
        kind: _sorted(_tree(schemas, schemas[schema]["properties"][kind], enums, kind))
        for kind, schema in CREATE_INPUTS.items()
    }
    return {"fields": fields, "enums": dict(sorted(enums.items()))}


@functools.cache
def lago_fields() -> dict:
    """The committed field lists (see the module's docstring)."""
    return json.loads(FIELDS_FILE.read_text(encoding="utf-8"))


def main(argv: list[str]) -> None:
    FIELDS_FILE.write_text(json.dumps(from_openapi(Path(argv[0])), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FIELDS_FILE}")


if __name__ == "__main__":
    main(sys.argv[1:])
