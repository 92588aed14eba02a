"""Invoice numbering inputs: customer numbers and the number prefix."""

import polars as pl

DEFAULT_PREFIX = "MTH"


def number_prefix(entity_prefix: str | None) -> str:
    """The billing entity's `document_number_prefix`, else MTH."""
    return entity_prefix or DEFAULT_PREFIX


def new_customer_sequences(known: dict[str, int], customers: pl.DataFrame) -> dict[str, int]:
    """Numbers for the customers that have none yet: the next ones after the highest given, in
    (created_at, external_id) order (a customer keeps its number forever)."""
    new = customers.filter(~pl.col("customer_id").is_in(list(known))).sort(
        ["created_at", "external_id"], nulls_last=False
    )
    first = max(known.values(), default=0) + 1
    return {customer_id: first + i for i, customer_id in enumerate(new["customer_id"])}
