"""Outputs in Lago's JSON schemas, built from the warehouse tables."""
