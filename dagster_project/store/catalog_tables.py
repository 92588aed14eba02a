"""Schema `catalog`: the parsed catalog written as tables, and the reads of it that steps before
pricing need (the property keys the loader keeps, the inputs of the billing periods)."""

import hashlib
from pathlib import Path

import polars as pl

from dagster_project.catalog import Catalog, tables
from dagster_project.store.tables import write_table

# The code the catalog tables are derived by: the catalog package, this module and the table writer.
_CATALOG_PACKAGE = Path(__file__).parents[1] / "catalog"
_DERIVED_BY = sorted([*_CATALOG_PACKAGE.glob("*.py"), *_CATALOG_PACKAGE.glob("*.json"), Path(__file__),
                      Path(__file__).with_name("tables.py")])

_S, _I, _B = pl.String, pl.Int64, pl.Boolean
EMPTY_SCHEMAS = {
    "charge_filters": {"charge_filter_id": _S, "charge_id": _S, "filter_index": _I, "invoice_display_name": _S,
                       "key_count": _I, "value_count": _I, "filter_values_json": _S, "properties_json": _S},
    "charge_filter_values": {"charge_filter_id": _S, "charge_id": _S, "key": _S, "value": _S},
    "wallets": {"wallet_id": _S, "wallet_key": _S, "creation_order": _I, "customer_id": _S,
                "external_customer_id": _S, "name": _S, "code": _S, "currency": _S, "priority": _I,
                "rate_amount": _S, "paid_credits": _S, "granted_credits": _S, "created_at": pl.Datetime("us"),
                "expiration_at": pl.Datetime("us"), "invoice_requires_successful_payment": _B,
                "fee_types_json": _S, "billable_metric_codes_json": _S, "transaction_metadata_json": _S},
    "wallet_rules": {"wallet_id": _S, "rule_index": _I, "trigger": _S, "method": _S, "interval": _S,
                     "threshold_credits": _S, "target_ongoing_balance": _S, "paid_credits": _S, "granted_credits": _S,
                     "grants_target_top_up": _B, "started_on": pl.Date, "transaction_metadata_json": _S},
    "charges": {"charge_id": _S, "plan_id": _S, "plan_code": _S, "charge_index": _I, "billable_metric_id": _S,
                "billable_metric_code": _S, "charge_model": _S, "is_pay_in_advance": _B,
                "invoice_display_name": _S, "min_amount_cents": _I, "rounding_function": _S,
                "rounding_precision": _I, "properties_json": _S, "tax_codes_json": _S},
    "subscriptions": {"subscription_id": _S, "external_id": _S, "name": _S, "customer_id": _S,
                      "external_customer_id": _S, "plan_id": _S, "plan_code": _S, "billing_time": _S, "interval": _S,
                      "timezone": _S, "currency": _S, "subscription_at": pl.Datetime("us"),
                      "terminated_at": pl.Datetime("us"), "trial_period_days": _S, "is_plan_pay_in_advance": _B},
    "taxes": {"tax_id": _S, "code": _S, "name": _S, "rate": _S, "description": _S, "is_applied_to_organization": _B},
    "billing_entities": {"billing_entity_id": _S, "code": _S, "name": _S, "country": _S, "address_line1": _S,
                         "address_line2": _S, "zipcode": _S, "city": _S, "email": _S, "tax_identification_number": _S,
                         "document_number_prefix": _S, "is_eu_tax_management": _B, "state": _S, "legal_name": _S,
                         "legal_number": _S, "net_payment_term": _I},
    "credit_notes": {"credit_note_id": _S, "credit_note_order": _I, "invoice_ref": _S, "reason": _S, "description": _S,
                     "credit_amount_cents": _I, "refund_amount_cents": _I, "items_json": _S,
                     "created_at": pl.Datetime("us"), "voided_at": pl.Datetime("us"), "catalog_location": _S},
    "coupons": {"coupon_id": _S, "code": _S, "name": _S, "description": _S, "coupon_type": _S, "amount_cents": _I,
                "amount_currency": _S, "percentage_rate": _S, "frequency": _S, "frequency_duration": _I,
                "is_reusable": _B, "expiration": _S, "expiration_at": pl.Datetime("us"), "plan_codes_json": _S,
                "billable_metric_codes_json": _S},
    "applied_coupons": {"applied_coupon_id": _S, "applied_order": _I, "customer_id": _S, "external_customer_id": _S,
                        "coupon_id": _S, "coupon_code": _S, "coupon_name": _S, "coupon_type": _S, "amount_cents": _I,
                        "amount_currency": _S, "percentage_rate": _S, "frequency": _S, "frequency_duration": _I,
                        "plan_codes_json": _S, "billable_metric_codes_json": _S, "created_at": pl.Datetime("us"),
                        "catalog_location": _S},
    "usage_thresholds": {"usage_threshold_id": _S, "plan_id": _S, "plan_code": _S, "threshold_index": _I,
                         "amount_cents": _I, "is_recurring": _B, "threshold_display_name": _S},
    "webhook_endpoints": {"webhook_endpoint_id": _S, "webhook_url": _S, "name": _S, "signature_algo": _S,
                          "event_types_json": _S, "created_on": pl.Date},
    "alerts": {"alert_id": _S, "code": _S, "name": _S, "alert_type": _S, "external_subscription_id": _S,
               "billable_metric_code": _S, "thresholds_json": _S},
    "pricing_group_keys": {"charge_id": _S, "charge_filter_key": _S, "group_key": _S, "key_index": _I},
    "wallet_transactions": {"manual_transaction_id": _S, "transaction_order": _I, "wallet_id": _S, "name": _S,
                            "paid_credits": _S, "granted_credits": _S, "voided_credits": _S,
                            "invoice_requires_successful_payment": _B, "created_at": pl.Datetime("us"), "metadata_json": _S},
}

CATALOG_SCHEMAS = {
    "charges": {"rounding_function": pl.String, "rounding_precision": pl.Int64, "min_amount_cents": pl.Int64},
    "plans": {"minimum_commitment_cents": pl.Int64},
    "subscriptions": {"subscription_at": pl.Datetime("us"), "terminated_at": pl.Datetime("us"),
                      "trial_period_days": pl.String},
    "wallets": {"created_at": pl.Datetime("us"), "expiration_at": pl.Datetime("us"), "transaction_metadata_json": _S},
    "wallet_rules": {"interval": pl.String, "threshold_credits": pl.String, "target_ongoing_balance": pl.String,
                     "paid_credits": pl.String, "granted_credits": pl.String, "started_on": pl.Date,
                     "transaction_metadata_json": _S},
    "wallet_transactions": {"created_at": pl.Datetime("us"), "invoice_requires_successful_payment": pl.Boolean,
                            "metadata_json": _S},
    "credit_notes": {"created_at": pl.Datetime("us"), "voided_at": pl.Datetime("us"), "description": pl.String},
    "coupons": EMPTY_SCHEMAS["coupons"],
    "usage_thresholds": EMPTY_SCHEMAS["usage_thresholds"],
    "applied_coupons": EMPTY_SCHEMAS["applied_coupons"],
    "webhook_endpoints": EMPTY_SCHEMAS["webhook_endpoints"],
    "alerts": EMPTY_SCHEMAS["alerts"],
}

CATALOG_TABLES = [*tables.TABLES, "property_keys"]


def catalog_digest(folder: Path) -> str:
    """SHA-256 of everything the catalog tables are derived from: each `*.json` file of the catalog
    folder (its name and bytes, the files `read_catalog` reads) and the code that derives them. Equal
    digests give equal tables, so an unchanged catalog is not parsed and written again."""
    digest = hashlib.sha256()
    for path in [*sorted(Path(folder).glob("*.json")), *_DERIVED_BY]:
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()


def table_rows(con) -> dict[str, int]:
    """Rows per catalog table, as written."""
    return {name: con.execute(f'select count(*) from catalog."{name}"').fetchone()[0] for name in CATALOG_TABLES}


def write_catalog(con, parsed: Catalog) -> dict[str, int]:
    """Replace every table of schema `catalog` with the parsed catalog's rows; rows per table."""
    counts = {}
    for name, build in tables.TABLES.items():
        rows = build(parsed)
        frame = pl.DataFrame(rows, schema_overrides=CATALOG_SCHEMAS.get(name), infer_schema_length=None)
        if frame.width == 0:  # no such entity in this catalog: an empty table of the right shape
            frame = pl.DataFrame(schema=EMPTY_SCHEMAS[name])
        # An optional field no body sets is a column of nulls: keep it text, not DuckDB's NULL type.
        frame = frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t == pl.Null)
        write_table(con, "catalog", name, frame)
        counts[name] = len(rows)
    keys, filter_keys = tables.property_keys(parsed), set(tables.filter_keys(parsed))
    group_keys = set(tables.group_keys(parsed))
    write_table(con, "catalog", "property_keys", pl.DataFrame(
        {"key": keys, "is_filter_key": [k in filter_keys for k in keys], "is_group_key": [k in group_keys for k in keys]},
        schema={"key": pl.String, "is_filter_key": pl.Boolean, "is_group_key": pl.Boolean}))
    counts["property_keys"] = len(keys)
    return counts


def metric_expressions(con) -> dict[str, tuple[str, str]]:
    """The metrics with an `expression`: code -> (field_name, expression), for the loader."""
    return {code: (field, text) for code, field, text in con.execute(
        "select code, field_name, expression from catalog.billable_metrics where expression is not null order by code"
    ).fetchall()}


def property_keys(con) -> list[str]:
    """The event property keys the catalog prices or filters on (`catalog.property_keys`)."""
    return [r[0] for r in con.execute("select key from catalog.property_keys").fetchall()]
