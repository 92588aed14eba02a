"""The store: every SQL statement the Python steps send to the DuckDB warehouse, grouped by the
tables each module reads or writes. The `defs/` assets call these functions; nothing in `defs/`
speaks SQL. (The event loader, `ingest/events.py`, keeps its own SQL for now.)

Named `store`, not `warehouse`: `warehouse/` is the data folder (`warehouse/meterhouse.duckdb`),
which `.gitignore` leaves out wherever it appears."""
