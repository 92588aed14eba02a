"""The catalog: Lago request bodies (billable metrics, plans, customers, ...) read from a folder."""

from dagster_project.catalog.reader import Catalog, CatalogError, read_catalog

__all__ = ["Catalog", "CatalogError", "read_catalog"]
