"""pg_maintenance against the real lab primary, each test in its own scratch database."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from tests.helpers.ansible import four_steps, run_module, run_playbook
from tests.helpers.fixtures import connect

pytestmark = pytest.mark.integration

ROWS = 20000
MIN_BLOAT = "200kB"  # the pkey of ROWS ints is ~460 kB; once 90% of its rows are gone a fresh build is ~64 kB


def _flush(conn):
    # This session's counters reach pg_stat_user_tables before the server answers the next statement.
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")


def _table(conn, name, vacuum=False):
    """A table of ROWS rows of which 90% were deleted; with vacuum=True the dead rows are gone but the pkey
    stays bloated. Autovacuum is off for it so only the test and the module touch it."""
    table = sql.Identifier(name)
    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)")
                 .format(table))
    conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'x' FROM generate_series(1, %s) g").format(table), (ROWS,))
    conn.execute(sql.SQL("DELETE FROM {} WHERE id % 10 <> 0").format(table))
    _flush(conn)  # before VACUUM/ANALYZE, or the late counters would undo what they report
    if vacuum:
        conn.execute(sql.SQL("VACUUM {}").format(table))
        conn.execute(sql.SQL("ANALYZE {}").format(table))


def _stats(conn, name):
    return conn.cursor(row_factory=dict_row).execute("SELECT * FROM pg_stat_user_tables WHERE relname = %s",
                                                     (name,)).fetchone()


def _relation(conn, name):
    return conn.execute("SELECT oid, relfilenode FROM pg_class WHERE oid = %s::regclass", (name,)).fetchone()


def _session(lab, db, isolation="read committed"):
    """Another client of the scratch database, left in an open transaction by the caller."""
    conn = psycopg.connect(host=lab.primary.host, port=lab.primary.port, user=lab.admin_user,
                           password=lab.admin_password, dbname=db, application_name="pg_maintenance_test")
    conn.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
    return conn


def test_four_steps_vacuum_analyze_reindex(lab, pg_conn_params, scratch_db):
    with connect(lab, scratch_db) as conn:
        conn.execute("CREATE EXTENSION pgstattuple")
        _table(conn, "orders")
        conn.execute("CREATE TABLE clean (id int PRIMARY KEY) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO clean SELECT generate_series(1, 100)")
        _flush(conn)
        conn.execute("ANALYZE clean")
        clean_before = _stats(conn, "clean")
        args = dict(pg_conn_params, db=scratch_db, operations=["vacuum", "analyze", "reindex"],
                    min_bloat_bytes=MIN_BLOAT, lock_timeout="5s")
        check1, apply1, check2, apply2 = four_steps("pg_maintenance", args)
        after = _stats(conn, "orders")
        clean_after = _stats(conn, "clean")

    expected = ['VACUUM "public"."orders"', 'ANALYZE "public"."orders"',
                'REINDEX INDEX CONCURRENTLY "public"."orders_pkey"']
    assert check1.changed and not check1.failed, check1
    assert check1["queries"] == ["SET lock_timeout = '5000ms'", *expected]
    assert [o["operation"] for o in check1["objects"]] == ["vacuum", "analyze", "reindex"]
    assert check1["objects"][0]["dead_tuples_before"] == ROWS * 9 // 10
    # The pkey is not bloated yet (its dead entries are still there); the plan predicts it will be after VACUUM.
    assert "pgstatindex" in check1["objects"][2]["reason"]
    predicted = {t["name"]: t for t in check1["diff"]["after"]["tables"]}
    assert predicted["public.orders"]["n_dead_tup"] == 0
    assert apply1.changed and not apply1.failed, apply1
    assert apply1["queries"] == check1["queries"]
    vacuum, analyze, reindex = apply1["objects"]
    assert vacuum["dead_tuples_after"] == 0 and vacuum["duration_seconds"] is not None
    assert reindex["size_bytes_after"] < reindex["size_bytes_before"] / 3
    assert not apply1.get("warnings"), apply1
    assert not check2.changed and check2["queries"] == [] and check2["objects"] == [], check2
    assert not apply2.changed and apply2["queries"] == [], apply2
    assert after["n_dead_tup"] == 0 and after["n_mod_since_analyze"] == 0
    assert after["vacuum_count"] == 1 and after["analyze_count"] == 1
    assert clean_after == clean_before, "a clean table was touched"


def test_check_mode_changes_nothing(lab, pg_conn_params, scratch_db):
    with connect(lab, scratch_db) as conn:
        conn.execute("CREATE EXTENSION pgstattuple")
        _table(conn, "orders")
        _table(conn, "bloated", vacuum=True)

        def snapshot():
            return (conn.execute("SELECT * FROM pg_stat_user_tables ORDER BY relid").fetchall(),
                    conn.execute("SELECT c.relname, c.oid, c.relfilenode FROM pg_class c JOIN pg_namespace n "
                                 "ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1").fetchall())

        before = snapshot()
        base = dict(pg_conn_params, db=scratch_db, min_bloat_bytes=MIN_BLOAT, lock_timeout="1s")
        run = run_playbook([
            {"ops.runbooks.pg_maintenance": dict(base, operations=["vacuum", "analyze", "reindex"])},
            {"ops.runbooks.pg_maintenance": dict(base, operations=["vacuum", "reindex"], full=True)},
        ], check=True, diff=True)
        after = snapshot()

    plain, full = run.results
    assert plain.changed and full.changed, run.results
    assert 'REINDEX INDEX CONCURRENTLY "public"."bloated_pkey"' in plain["queries"]
    assert 'VACUUM (FULL, ANALYZE) "public"."orders"' in full["queries"]
    # VACUUM FULL rebuilds the indexes of the table it rewrites; bloated has no dead rows, so only a REINDEX.
    assert [o["operation"] for o in full["objects"]] == ["reindex", "vacuum"]
    assert all(o["duration_seconds"] is None and o["dead_tuples_after"] is None for o in plain["objects"])
    assert after == before


def test_four_steps_vacuum_full(lab, pg_conn_params, scratch_db):
    with connect(lab, scratch_db) as conn:
        _table(conn, "orders")
        before = _relation(conn, "orders")
        args = dict(pg_conn_params, db=scratch_db, tables=["public.orders"], full=True)
        check1, apply1, check2, apply2 = four_steps("pg_maintenance", args)
        after = _relation(conn, "orders")
        stats = _stats(conn, "orders")

    # One statement: its ANALYZE replaces the separate one and resets n_dead_tup, which VACUUM FULL leaves alone.
    assert check1["queries"] == ['VACUUM (FULL, ANALYZE) "public"."orders"'], check1
    assert apply1.changed and apply1["queries"] == check1["queries"], apply1
    vacuum = apply1["objects"][0]
    assert vacuum["dead_tuples_after"] == 0 and vacuum["size_bytes_after"] < vacuum["size_bytes_before"] / 3
    assert not apply1.get("warnings"), apply1
    assert not check2.changed and not apply2.changed, (check2, apply2)
    assert after[1] != before[1] and stats["n_dead_tup"] == 0


def test_reindex_bloated_index_without_pgstattuple(lab, pg_conn_params, scratch_db):
    with connect(lab, scratch_db) as conn:
        _table(conn, "events", vacuum=True)
        _table(conn, "audit", vacuum=True)
        events_before, audit_before = _relation(conn, "events_pkey"), _relation(conn, "audit_pkey")
        args = dict(pg_conn_params, db=scratch_db, operations=["reindex"], tables=["events"], min_bloat_bytes=MIN_BLOAT)
        tasks = [
            {"name": "check 1", "ops.runbooks.pg_maintenance": args, "check_mode": True},
            {"name": "apply 1", "ops.runbooks.pg_maintenance": args},
            {"name": "check 2", "ops.runbooks.pg_maintenance": args, "check_mode": True},
            {"name": "apply 2", "ops.runbooks.pg_maintenance": args},
            {"name": "plain", "ops.runbooks.pg_maintenance": dict(args, tables=["public.audit"], concurrently=False)},
        ]
        check1, apply1, check2, apply2, plain = run_playbook(tasks).results
        events_after, audit_after = _relation(conn, "events_pkey"), _relation(conn, "audit_pkey")

    assert check1["queries"] == ['REINDEX INDEX CONCURRENTLY "public"."events_pkey"'], check1
    assert "(estimate)" in check1["objects"][0]["reason"]
    assert apply1.changed and apply1["queries"] == check1["queries"], apply1
    assert apply1["objects"][0]["bloat_bytes_after"] < 64 * 1024
    assert not check2.changed and not apply2.changed, (check2, apply2)
    # CONCURRENTLY builds a new index and swaps it in (new oid); a plain REINDEX keeps the oid, new file only.
    assert events_after[0] != events_before[0] and events_after[1] != events_before[1]
    assert plain.changed and plain["queries"] == ['REINDEX INDEX "public"."audit_pkey"'], plain
    assert audit_after[0] == audit_before[0] and audit_after[1] != audit_before[1]


def test_lock_timeout_names_table_and_holder(lab, pg_conn_params, scratch_db):
    with connect(lab, scratch_db) as conn:
        _table(conn, "orders")
        holder = _session(lab, scratch_db)
        holder.execute("SELECT count(*) FROM orders")  # keeps ACCESS SHARE until the transaction ends
        pid = holder.info.backend_pid
        try:
            res = run_module("pg_maintenance", dict(pg_conn_params, db=scratch_db, full=True, lock_timeout="300ms"))
        finally:
            holder.rollback()
            holder.close()
        stats = _stats(conn, "orders")

    assert res.failed, res
    assert "VACUUM FULL of public.orders" in res["msg"] and "lock_timeout 300ms" in res["msg"], res["msg"]
    assert f"pid {pid}" in res["msg"], res["msg"]
    assert stats["n_dead_tup"] == ROWS * 9 // 10 and stats["vacuum_count"] == 0


def test_failed_reindex_concurrently_drops_its_invalid_copy(lab, pg_conn_params, scratch_db):
    with connect(lab, scratch_db) as conn:
        _table(conn, "events", vacuum=True)
        # REINDEX CONCURRENTLY waits for older snapshots after building its copy; lock_timeout ends that wait.
        holder = _session(lab, scratch_db, "repeatable read")
        holder.execute("SELECT 1")
        pid = holder.info.backend_pid
        try:
            res = run_module("pg_maintenance", dict(pg_conn_params, db=scratch_db, operations=["reindex"],
                                                    min_bloat_bytes=MIN_BLOAT, lock_timeout="500ms"))
        finally:
            holder.rollback()
            holder.close()
        invalid = conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid").fetchall()

    assert res.failed and "REINDEX CONCURRENTLY of public.events_pkey" in res["msg"], res
    assert "lock_timeout 500ms" in res["msg"] and f"session pid {pid}" in res["msg"], res["msg"]
    assert res["dropped_invalid_indexes"] == ["public.events_pkey_ccnew"], res
    assert invalid == []


def test_vacuum_held_back_by_old_snapshot_warns(lab, pg_conn_params, scratch_db):
    with connect(lab, scratch_db) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY) WITH (autovacuum_enabled = false)")
        conn.execute(f"INSERT INTO orders SELECT generate_series(1, {ROWS})")
        holder = _session(lab, scratch_db, "repeatable read")
        holder.execute("SELECT 1")  # its snapshot predates the DELETE, so VACUUM must keep those rows
        pid = holder.info.backend_pid
        try:
            conn.execute("DELETE FROM orders WHERE id % 2 = 0")
            _flush(conn)
            res = run_module("pg_maintenance", dict(pg_conn_params, db=scratch_db, operations=["vacuum"]))
        finally:
            holder.rollback()
            holder.close()

    assert res.changed and not res.failed, res
    assert res["objects"][0]["dead_tuples_after"] == ROWS // 2
    warnings = " ".join(res.get("warnings", []))
    assert "public.orders" in warnings and f"session pid {pid}" in warnings, res


def test_bad_input(lab, pg_conn_params, scratch_db):
    with connect(lab, scratch_db) as conn:
        _table(conn, "victim")
        before = _stats(conn, "victim")
        base = dict(pg_conn_params, db=scratch_db)
        bad = [
            (dict(base, operations=["vacuum", "defrag"]), "operations"),
            (dict(base, operations=[]), "operations"),
            (dict(base, schemas=["public"], tables=["victim"]), "mutually exclusive: schemas|tables"),
            (dict(base, tables=["x; DROP TABLE victim"]), "tables[0]"),
            (dict(base, tables=["victim", "public.victim;DROP TABLE victim"]), "tables[1]"),
            (dict(base, schemas=["public; DROP TABLE victim"]), "schemas[0]"),
            (dict(base, tables=["a.b.c"]), "tables[0]"),
            (dict(base, tables=["no_such_table"]), "tables[0]: no user table 'no_such_table'"),
            (dict(base, schemas=["no_such_schema"]), "schemas: ['no_such_schema'] do not exist"),
            (dict(base, min_dead_tuple_ratio=-0.5), "min_dead_tuple_ratio"),
            (dict(base, min_dead_tuple_ratio=2), "min_dead_tuple_ratio"),
            (dict(base, min_dead_tuple_ratio="many"), "min_dead_tuple_ratio"),
            (dict(base, min_dead_tuples=-1), "min_dead_tuples"),
            (dict(base, min_bloat_bytes="lots"), "min_bloat_bytes"),
            (dict(base, min_bloat_bytes="0"), "min_bloat_bytes"),
            (dict(base, lock_timeout="soon"), "lock_timeout"),
            (dict(base, statement_timeout="-1s"), "statement_timeout"),
            (dict(base, full=True, operations=["analyze"]), "full"),
        ]
        run = run_playbook([{"ops.runbooks.pg_maintenance": args} for args, _ in bad])
        after = _stats(conn, "victim")

    for (args, needle), res in zip(bad, run.results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"], (needle, res["msg"])
    assert after is not None, "the victim table was dropped"
    assert (after["vacuum_count"], after["analyze_count"], after["n_dead_tup"]) == (0, 0, before["n_dead_tup"])
    assert pg_conn_params["login_password"] not in run.stdout
