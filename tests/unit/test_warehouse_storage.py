"""How the warehouse's DuckDB connections store appended days (`MeterhouseSettings.connect`)."""

from dagster_project.defs.resources import MeterhouseSettings

ROW_GROUP = 122_880  # DuckDB's rows per row group


def _row_groups(con) -> dict[int, tuple]:
    """row group -> the blocks holding its column segments (where it lies in the file)."""
    rows = con.execute(
        "select row_group_id, list(block_id order by column_id, segment_id) from pragma_storage_info('t') group by 1"
    ).fetchall()
    return {group: tuple(blocks) for group, blocks in rows}


def _append_day(con, day: int, rows: int) -> None:
    con.execute(f"insert into t select {day}, range, md5(range::varchar) from range({rows})")
    con.execute("checkpoint")


def test_a_new_day_leaves_the_earlier_days_row_groups_where_they_are(tmp_path):
    # a day of 300,000 rows fills two row groups and part of a third; with DuckDB's vacuum the next
    # day's checkpoint merged that third group with the new rows, writing the earlier day again
    settings = MeterhouseSettings(catalog_dir="", events_dir="", out_dir="", warehouse_path=str(tmp_path / "w.duckdb"))
    with settings.connect() as con:
        con.execute("create table t (day int, n bigint, s varchar)")
        _append_day(con, 1, 300_000)
        first_day = _row_groups(con)
        assert len(first_day) == 3
        _append_day(con, 2, 300_000)
        both_days = _row_groups(con)
        assert len(both_days) == 6  # 3 + 3: nothing merged
        assert {group: both_days[group] for group in first_day} == first_day  # nothing rewritten


def test_a_deleted_day_frees_its_row_groups(tmp_path):
    # what vacuum still does without its merges: a rebuilt day's old rows leave no empty groups
    # behind, so reloading a day again and again does not grow the file
    settings = MeterhouseSettings(catalog_dir="", events_dir="", out_dir="", warehouse_path=str(tmp_path / "w.duckdb"))
    with settings.connect() as con:
        con.execute("create table t (day int, n bigint, s varchar)")
        _append_day(con, 1, 2 * ROW_GROUP)
        _append_day(con, 2, 2 * ROW_GROUP)
        con.execute("delete from t where day = 2")
        con.execute("checkpoint")
        assert len(_row_groups(con)) == 2
        for _ in range(3):
            _append_day(con, 2, 2 * ROW_GROUP)
            con.execute("delete from t where day = 2")
            con.execute("checkpoint")
        assert len(_row_groups(con)) == 2
        assert con.execute("select count(*) from t").fetchone()[0] == 2 * ROW_GROUP
