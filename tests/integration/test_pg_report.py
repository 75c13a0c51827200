"""pg_report against the real lab primary and replica."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tests.helpers.ansible import run_module, run_playbook
from tests.helpers.fixtures import connect

pytestmark = pytest.mark.integration

SECTIONS = ["slow_queries", "connections", "sizes", "bloat", "long_transactions", "replication"]
CALLS = 250


def _session(lab, dbname, autocommit=True):
    return psycopg.connect(host=lab.primary.host, port=lab.primary.port, user=lab.admin_user,
                           password=lab.admin_password, dbname=dbname, autocommit=autocommit)


def test_slow_queries_and_missing_extension(lab, pg_conn_params, scratch_db):
    args = dict(pg_conn_params, db=scratch_db, sections=["slow_queries"])
    missing = run_module("pg_report", args)
    assert not missing.failed, missing
    assert missing["slow_queries"]["available"] is False
    assert f"CREATE EXTENSION pg_stat_statements in database {scratch_db}" in missing["slow_queries"]["hint"]
    assert [(f["severity"], f["object"]) for f in missing["findings"]] == [("info", scratch_db)]

    with connect(lab, scratch_db) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE TABLE hot_rows AS SELECT g AS id FROM generate_series(1, 100) g")
        for i in range(CALLS):
            conn.execute("SELECT count(*) FROM hot_rows WHERE id < %s", (i,))
    # top is large enough to list every statement the cluster has seen, so other tests' traffic cannot push
    # ours out; the ranking itself is checked on the ordering of what comes back.
    run = run_playbook([
        {"ops.runbooks.pg_report": dict(args, order_by="calls", top=5000)},
        {"ops.runbooks.pg_report": dict(args, order_by="mean_time", top=3)},
        {"ops.runbooks.pg_report": dict(args, order_by="total_time", top=5000, query_length=20)},
    ])
    by_calls, by_mean, truncated = run.results
    assert not by_calls.failed, by_calls
    section = by_calls["slow_queries"]
    assert section["available"] and section["order_by"] == "calls"
    ours = [s for s in section["statements"] if s["database"] == scratch_db and s["query"].startswith("SELECT count")]
    assert len(ours) == 1, section
    assert ours[0]["calls"] == CALLS and ours[0]["user"] == lab.admin_user
    assert ours[0]["query"] == "SELECT count(*) FROM hot_rows WHERE id < $1"
    calls = [s["calls"] for s in section["statements"]]
    assert calls == sorted(calls, reverse=True)
    assert by_calls["findings"] == []

    means = [s["mean_time_ms"] for s in by_mean["slow_queries"]["statements"]]
    assert len(means) == 3 and means == sorted(means, reverse=True)
    statements = truncated["slow_queries"]["statements"]
    assert all(len(s["query"]) <= 20 for s in statements)
    assert [s["total_time_ms"] for s in statements] == sorted((s["total_time_ms"] for s in statements), reverse=True)
    assert ours[0]["queryid"] in {s["queryid"] for s in statements if s["query"] == "SELECT count(*) FROM"}


def _snapshot(lab, dbname):
    with connect(lab, dbname) as conn:
        return {
            "extensions": conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall(),
            "relations": conn.execute("SELECT relname, relkind FROM pg_class c JOIN pg_namespace n "
                                      "ON n.oid = c.relnamespace WHERE nspname = 'public' ORDER BY 1").fetchall(),
            "writes": conn.execute("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, vacuum_count, analyze_count "
                                   "FROM pg_stat_user_tables ORDER BY 1").fetchall(),
            "sessions": conn.execute("SELECT pid, state FROM pg_stat_activity WHERE datname = %s "
                                     "AND pid <> pg_backend_pid() ORDER BY 1", (dbname,)).fetchall(),
        }


def test_report_sections_findings_and_check_mode(lab, pg_conn_params, scratch_db):
    big, churn, small = "big_orders", "churn", "small_lookup"
    with connect(lab, scratch_db) as conn:
        # Autovacuum stays off so nothing changes sizes or dead tuples while the report runs.
        for name in (big, churn, small):
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false, "
                                 "toast.autovacuum_enabled = false)").format(sql.Identifier(name)))
        conn.execute("ALTER TABLE big_orders ALTER COLUMN payload SET STORAGE EXTERNAL")  # big values go to TOAST
        conn.execute("INSERT INTO big_orders SELECT g, repeat(md5(g::text), CASE WHEN g % 10 = 0 THEN 100 ELSE 2 END) "
                     "FROM generate_series(1, 20000) g")
        conn.execute("INSERT INTO churn SELECT g FROM generate_series(1, 10000) g")
        conn.execute("INSERT INTO small_lookup SELECT g, 'x' FROM generate_series(1, 10) g")
        conn.execute("DELETE FROM churn WHERE id % 2 = 0")
        # Counts are flushed to the shared statistics before ANALYZE overwrites live/dead tuples, not after it
        # (the flush happens before the server answers the next statement).
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("ANALYZE")
    idle = [_session(lab, scratch_db) for _ in range(3)]
    holder = _session(lab, scratch_db, autocommit=False)
    holder.execute("SELECT txid_current()")  # a transaction with an xid, left idle: it holds back xmin
    holder_pid = holder.info.backend_pid

    full = dict(pg_conn_params, db=scratch_db, top=1000, long_transaction_threshold="0",
                thresholds=dict(dead_tuple_ratio=0.3, min_dead_tuples=100, bloat_ratio=0.4, bloat_min_size="0"))
    before = _snapshot(lab, scratch_db)
    run = run_playbook([
        {"ops.runbooks.pg_report": full},
        {"ops.runbooks.pg_report": full, "check_mode": True},
        {"ops.runbooks.pg_report": dict(pg_conn_params, db=scratch_db, sections=["connections", "sizes"], top=2)},
        {"ops.runbooks.pg_report": dict(full, sections=["long_transactions"], long_transaction_threshold="1d")},
    ])
    after = _snapshot(lab, scratch_db)
    report, checked, filtered, day = run.results
    for res in run.results:
        assert not res.failed and not res.changed and res["plan"] == [], res

    assert set(SECTIONS) | {"findings", "generated_at", "server_version", "database"} <= set(report)
    assert report["database"] == scratch_db
    assert report["server_version"].startswith(f"{holder.info.server_version // 10000}.")
    findings = {}
    for finding in report["findings"]:
        findings.setdefault((finding["section"], finding["object"]), []).append(finding)

    # Connections: the three idle sessions, the transaction holder and the module's own session.
    conns = report["connections"]
    assert conns["by_database"][scratch_db] == 5
    assert conns["by_state"]["idle in transaction"] >= 1
    assert conns["usable_connections"] == conns["max_connections"] - conns["reserved_connections"]
    assert conns["total"] == sum(conns["by_database"].values()) == sum(conns["by_user"].values())

    # Sizes: the big table first, its parts adding up, its TOAST counted.
    tables = report["sizes"]["tables"]
    assert [t["table"] for t in tables] == [big, churn, small]
    assert all(t["total_bytes"] == t["table_bytes"] + t["index_bytes"] + t["toast_bytes"] for t in tables)
    assert tables[0]["toast_bytes"] > 0 and tables[0]["index_bytes"] > 0
    assert {d["database"] for d in report["sizes"]["databases"]} >= {scratch_db, "postgres"}

    # Bloat: half of churn's rows are dead, so dead ratio, table and index estimates all point at it.
    table_bloat = report["bloat"]["tables"][0]
    assert (table_bloat["table"], table_bloat["dead_tuples"], table_bloat["dead_ratio"]) == (churn, 5000, 0.5)
    assert 0.4 < table_bloat["bloat_ratio"] < 0.6, table_bloat
    index_bloat = {i["index"]: i for i in report["bloat"]["indexes"]}
    assert 0.3 < index_bloat[f"{churn}_pkey"]["bloat_ratio"] < 0.7, index_bloat
    churn_findings = [f["message"] for f in findings[("bloat", f"{scratch_db}.public.{churn}")]]
    assert len(churn_findings) == 2 and "5000 dead tuples (50%" in churn_findings[0], churn_findings
    assert "estimated 4" in churn_findings[1] and "VACUUM FULL" in churn_findings[1], churn_findings
    assert any(f["object"] == f"{scratch_db}.public.{churn}_pkey" for f in report["findings"])
    assert ("bloat", f"{scratch_db}.public.{small}") not in findings

    # Long transactions: the held transaction is listed, flagged and holds back xmin.
    long_tx = report["long_transactions"]
    mine = [t for t in long_tx["transactions"] if t["pid"] == holder_pid]
    assert mine and mine[0]["state"] == "idle in transaction" and mine[0]["query"] == "SELECT txid_current()"
    assert [f["severity"] for f in findings[("long_transactions", f"pid {holder_pid}")]] == ["warning"]
    assert ("backend", str(holder_pid)) in {(h["kind"], h["name"]) for h in long_tx["xmin_holders"]}
    assert holder_pid not in {t["pid"] for t in day["long_transactions"]["transactions"]}
    assert ("long_transactions", f"pid {holder_pid}") not in {(f["section"], f["object"]) for f in day["findings"]}

    # pg_stat_statements is not created in the scratch database.
    assert report["slow_queries"]["available"] is False
    assert report["replication"]["role"] == "primary"

    # Sections filter: only what was asked, ranked lists cut at top.
    assert set(SECTIONS) & set(filtered) == {"connections", "sizes"}
    assert [t["table"] for t in filtered["sizes"]["tables"]] == [big, churn]
    assert set(SECTIONS) & set(day) == {"long_transactions"}

    # Check mode returns the same data and the server is untouched (the held transaction included).
    for key in ("sizes", "bloat", "slow_queries"):
        assert checked[key] == report[key], key
    assert checked["connections"]["by_database"][scratch_db] == 5
    assert holder_pid in {t["pid"] for t in checked["long_transactions"]["transactions"]}
    assert before == after
    assert holder.execute("SELECT 1").fetchone() == (1,)
    for conn in [*idle, holder]:
        conn.close()


def test_replication_summary(lab, pg_conn_params, replica_conn_params):
    run = run_playbook([
        {"ops.runbooks.pg_report": dict(pg_conn_params, sections=["replication"])},
        {"ops.runbooks.pg_report": dict(replica_conn_params, sections=["replication"])},
    ])
    primary, standby = run.results
    assert primary["replication"]["role"] == "primary", primary
    assert [(s["name"], s["state"]) for s in primary["replication"]["standbys"]] == [("lab_replica", "streaming")]
    assert standby["replication"]["role"] == "standby", standby
    assert standby["replication"]["receiver_status"] == "streaming"
    assert standby["replication"]["replay_paused"] is False
    assert not [f for f in standby["findings"] if "not streaming" in f["message"]]


def test_bad_input_fails_before_connecting(pg_conn_params):
    # Nothing listens on port 1: a case that got as far as connecting would fail with "cannot connect".
    base = dict(pg_conn_params, login_port=1)
    bad = [
        (dict(base, sections=["everything"]), "sections"),
        (dict(base, sections=["connections; DROP TABLE victim"]), "sections"),
        (dict(base, sections=[]), "sections"),
        (dict(base, long_transaction_threshold="five minutes"), "long_transaction_threshold"),
        (dict(base, long_transaction_threshold="-5"), "long_transaction_threshold"),
        (dict(base, top=0), "top"),
        (dict(base, top=-3), "top"),
        (dict(base, top="ten"), "top"),
        (dict(base, query_length=0), "query_length"),
        (dict(base, order_by="speed"), "order_by"),
        (dict(base, thresholds={"connections_percent": 150}), "thresholds.connections_percent"),
        (dict(base, thresholds={"connections_percent": "lots"}), "connections_percent"),
        (dict(base, thresholds={"dead_tuple_ratio": 1.5}), "thresholds.dead_tuple_ratio"),
        (dict(base, thresholds={"min_dead_tuples": -1}), "thresholds.min_dead_tuples"),
        (dict(base, thresholds={"replication_lag": "far"}), "thresholds.replication_lag"),
        (dict(base, thresholds={"bogus": 1}), "bogus"),
    ]
    run = run_playbook([{"ops.runbooks.pg_report": args} for args, _ in bad] + [{"ops.runbooks.pg_report": base}])
    *results, control = run.results
    for (args, needle), res in zip(bad, results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"] and "cannot connect" not in res["msg"], (needle, res["msg"])
    assert control.failed and "cannot connect" in control["msg"], control
    assert pg_conn_params["login_password"] not in run.stdout
