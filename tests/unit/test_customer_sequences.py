"""Customer numbers kept in `billing.customer_sequences`: appended in one statement, never changed."""

import duckdb
import pytest

from dagster_project.store import billing_tables


def test_new_customer_numbers_are_appended_and_an_existing_one_cannot_be_given_again():
    con = duckdb.connect()
    billing_tables.create_append_only_tables(con)
    billing_tables.add_customer_sequences(con, {})
    billing_tables.add_customer_sequences(con, {"c1": 1, "c2": 2})
    billing_tables.add_customer_sequences(con, {"c3": 3})
    assert billing_tables.customer_sequences(con) == {"c1": 1, "c2": 2, "c3": 3}
    with pytest.raises(duckdb.ConstraintException):  # (a customer keeps its number forever)
        billing_tables.add_customer_sequences(con, {"c2": 4})
    assert billing_tables.customer_sequences(con) == {"c1": 1, "c2": 2, "c3": 3}
