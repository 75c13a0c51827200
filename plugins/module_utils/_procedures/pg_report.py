# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts for a daily PostgreSQL operations report, plus ``findings`` where a threshold is crossed.

Read-only: every statement is a SELECT, so check mode runs exactly the same code.
"""

from __future__ import annotations

from datetime import UTC

from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import REQUIREMENT, PostgresClient, sql
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    postgres_connection_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure

SECTIONS = ["slow_queries", "connections", "sizes", "bloat", "long_transactions", "replication"]
ORDER_COLUMNS = {"total_time": "total_exec_time", "mean_time": "mean_exec_time", "calls": "calls"}
SEVERITIES = ["critical", "warning", "info"]
MIN_SERVER_VERSION = 130000  # pg_stat_statements 1.8 column names (total_exec_time) and pg_stat_activity as used

_SERVER = """
SELECT now() AS now, current_setting('server_version') AS version, current_setting('server_version_num')::int AS num,
       current_database() AS database, pg_is_in_recovery() AS in_recovery
"""

_PGSS_SCHEMA = """
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pg_stat_statements'
"""
_SLOW_QUERIES = r"""
SELECT d.datname AS database, r.rolname AS user, s.queryid, s.calls, s.rows,
       round(s.total_exec_time::numeric, 3)::float AS total_time_ms,
       round(s.mean_exec_time::numeric, 3)::float AS mean_time_ms,
       round(s.max_exec_time::numeric, 3)::float AS max_time_ms,
       round((100 * s.total_exec_time / nullif(sum(s.total_exec_time) OVER (), 0))::numeric, 2)::float
           AS percent_total_time,
       left(regexp_replace(s.query, '\s+', ' ', 'g'), %(query_length)s) AS query
  FROM {view} s
  LEFT JOIN pg_database d ON d.oid = s.dbid
  LEFT JOIN pg_roles r ON r.oid = s.userid
 ORDER BY {order} DESC, s.queryid
 LIMIT %(top)s
"""

# Walsenders and background workers have their own limits (max_wal_senders, max_worker_processes); only
# client backends take one of max_connections.
_LIMITS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true), '0')::int AS reserved_connections
"""
_CONNECTIONS = """
SELECT coalesce(state, 'unknown') AS state, coalesce(datname, '') AS database, coalesce(usename, '') AS user,
       count(*)::int AS sessions
  FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1, 2, 3
"""

# has_database_privilege() is NULL for a database dropped meanwhile, which keeps pg_database_size() from failing.
_DATABASE_SIZES = """
SELECT datname AS database,
       CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END AS bytes
  FROM pg_database ORDER BY bytes DESC NULLS LAST, datname
"""
# Schemas starting with pg_ are the catalog, TOAST and other sessions' temporary schemas.
_TABLE_SIZES = """
SELECT schema, "table", table_bytes + index_bytes + toast_bytes AS total_bytes, table_bytes, index_bytes, toast_bytes
  FROM (SELECT n.nspname AS schema, c.relname AS "table", pg_indexes_size(c.oid) AS index_bytes,
               coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS toast_bytes,
               pg_table_size(c.oid) - coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS table_bytes
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'm') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema') t
 WHERE table_bytes IS NOT NULL
 ORDER BY total_bytes DESC, schema, "table"
 LIMIT %(top)s
"""

# Size-based bloat estimate (documented in the module): the pages the live rows need, each row being a 24-byte
# header plus its average width from pg_stats rounded up to 8 bytes, plus a 4-byte line pointer, packed into
# pages (less the 24-byte page header) up to the fillfactor. Bloat is what the relation holds beyond that.
# Without statistics (never analyzed) the estimate is NULL rather than a guess.
_TABLE_BLOAT = """
WITH t AS (
  SELECT s.schemaname AS schema, s.relname AS "table", s.n_live_tup AS live_tuples, s.n_dead_tup AS dead_tuples,
         s.n_dead_tup::float / nullif(s.n_live_tup + s.n_dead_tup, 0) AS dead_ratio,
         pg_relation_size(s.relid) AS table_bytes,
         greatest(s.last_vacuum, s.last_autovacuum)::text AS last_vacuum,
         (SELECT sum(st.avg_width) FROM pg_stats st
           WHERE st.schemaname = s.schemaname AND st.tablename = s.relname AND NOT st.inherited) AS row_width,
         coalesce((SELECT o.option_value::int FROM pg_options_to_table(c.reloptions) o
                    WHERE o.option_name = 'fillfactor'), 100) AS fillfactor,
         current_setting('block_size')::int AS bs
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
), e AS (
  SELECT t.*, greatest(table_bytes - bs * ceil(live_tuples / greatest(1, floor(
           (bs - 24) * fillfactor / 100.0 / (24 + 4 + ceil(row_width / 8.0) * 8)))), 0)::bigint AS bloat_bytes
    FROM t
)
SELECT schema, "table", live_tuples, dead_tuples, round(dead_ratio::numeric, 4)::float AS dead_ratio, table_bytes,
       bloat_bytes, round((bloat_bytes::numeric / nullif(table_bytes, 0)), 4)::float AS bloat_ratio, last_vacuum
  FROM e
 ORDER BY (dead_tuples >= %(min_dead_tuples)s AND dead_ratio > %(dead_ratio)s) DESC NULLS LAST,
          bloat_bytes DESC NULLS LAST, dead_tuples DESC, schema, "table"
 LIMIT %(top)s
"""
# B-tree only (other access methods pack differently): an index tuple is an 8-byte header plus the key
# columns' average width rounded up to 8 bytes, plus a 4-byte line pointer; a leaf page loses 24 bytes of
# header and 16 of special space, is filled up to the fillfactor (90 by default), and there is one metapage.
# Expression keys have no column statistics, so those indexes get no estimate.
_INDEX_BLOAT = """
WITH i AS (
  SELECT n.nspname AS schema, ct.relname AS "table", ci.relname AS index, am.amname AS method,
         pg_relation_size(ci.oid) AS index_bytes, s.idx_scan AS scans, ci.reltuples,
         coalesce((SELECT o.option_value::int FROM pg_options_to_table(ci.reloptions) o
                    WHERE o.option_name = 'fillfactor'), 90) AS fillfactor,
         (SELECT CASE WHEN count(st.avg_width) = ix.indnatts THEN sum(st.avg_width) END
            FROM unnest(ix.indkey::int2[]) k(attnum)
            JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum
            LEFT JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = ct.relname
                                 AND st.attname = a.attname AND NOT st.inherited) AS key_width,
         current_setting('block_size')::int AS bs
    FROM pg_index ix
    JOIN pg_class ci ON ci.oid = ix.indexrelid
    JOIN pg_class ct ON ct.oid = ix.indrelid
    JOIN pg_namespace n ON n.oid = ct.relnamespace
    JOIN pg_am am ON am.oid = ci.relam
    LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = ix.indexrelid
   WHERE ci.relkind = 'i' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
), e AS (
  SELECT i.*, CASE WHEN method = 'btree' AND reltuples >= 0 THEN
           greatest(index_bytes - bs * (1 + ceil(reltuples / greatest(1, floor(
             (bs - 24 - 16) * fillfactor / 100.0 / (8 + ceil(key_width / 8.0) * 8 + 4))))), 0)::bigint
         END AS bloat_bytes
    FROM i
)
SELECT schema, "table", index, method, index_bytes, scans, bloat_bytes,
       round((bloat_bytes::numeric / nullif(index_bytes, 0)), 4)::float AS bloat_ratio
  FROM e
 ORDER BY bloat_bytes DESC NULLS LAST, index_bytes DESC, schema, index
 LIMIT %(top)s
"""

_LONG_TRANSACTIONS = r"""
SELECT pid, usename AS user, datname AS database, application_name, host(client_addr) AS client_addr, backend_type,
       state, round(extract(epoch FROM now() - xact_start)::numeric, 3)::float AS age_seconds,
       left(regexp_replace(query, '\s+', ' ', 'g'), %(query_length)s) AS query
  FROM pg_stat_activity
 WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
   AND now() - xact_start > make_interval(secs => %(threshold)s)
 ORDER BY xact_start, pid
"""
_PREPARED = """
SELECT gid, owner AS user, database, age(transaction) AS xmin_age,
       round(extract(epoch FROM now() - prepared)::numeric, 3)::float AS age_seconds
  FROM pg_prepared_xacts
 WHERE now() - prepared > make_interval(secs => %(threshold)s)
 ORDER BY prepared, gid
"""
# Everything that keeps VACUUM from removing dead rows: a backend's snapshot or own transaction id (an idle
# transaction in READ COMMITTED has no snapshot but still an xid), a prepared transaction, a replication slot.
_XMIN_HOLDERS = """
SELECT kind, name, database, "user", active, xmin_age FROM (
  SELECT 'backend' AS kind, pid::text AS name, datname AS database, usename AS "user", true AS active,
         greatest(age(backend_xmin), age(backend_xid)) AS xmin_age
    FROM pg_stat_activity
   WHERE (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL) AND pid <> pg_backend_pid()
  UNION ALL
  SELECT 'prepared_transaction', gid, database, owner, false, age(transaction) FROM pg_prepared_xacts
  UNION ALL
  SELECT 'replication_slot', slot_name, database, NULL, active, greatest(age(xmin), age(catalog_xmin))
    FROM pg_replication_slots WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL
) h
 ORDER BY xmin_age DESC, kind, name
 LIMIT %(top)s
"""

_STANDBYS = """
SELECT application_name AS name, host(client_addr) AS client_addr, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
       round(extract(epoch FROM replay_lag)::numeric, 3)::float AS replay_lag_seconds
  FROM pg_stat_replication ORDER BY application_name, pid
"""
_STANDBY_STATUS = """
SELECT (SELECT status FROM pg_stat_wal_receiver) AS receiver_status,
       (SELECT sender_host FROM pg_stat_wal_receiver) AS upstream_host,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS replay_lag_bytes,
       round(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::numeric, 3)::float
           AS last_replay_age_seconds,
       pg_is_wal_replay_paused() AS replay_paused
"""


class PgReport(Procedure):
    requirements = (REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                sections=dict(type="list", elements="str", choices=SECTIONS, default=SECTIONS),
                top=dict(type="int", default=10),
                order_by=dict(type="str", default="total_time", choices=sorted(ORDER_COLUMNS)),
                query_length=dict(type="int", default=200),
                long_transaction_threshold=dict(type="str", default="5min"),
                thresholds=dict(
                    type="dict", default={}, apply_defaults=True,
                    options=dict(
                        connections_percent=dict(type="float", default=80.0),
                        dead_tuple_ratio=dict(type="float", default=0.2),
                        min_dead_tuples=dict(type="int", default=1000),
                        bloat_ratio=dict(type="float", default=0.5),
                        bloat_min_size=dict(type="str", default="100MB"),
                        replication_lag=dict(type="str", default="64MB"),
                    ),
                ),
            )
        )
        return spec.merge(postgres_connection_argspec())

    def __init__(self, module):
        super().__init__(module)
        # Nothing ever changes, so a diff would only repeat the whole report twice.
        self.diff_mode = False
        self.findings = []

    def validate(self):
        p = self.params
        if not p["sections"]:
            raise ParameterError("sections", f"choose at least one of {SECTIONS}, or leave it out for all")
        validate.positive(p["top"], "top")
        validate.positive(p["query_length"], "query_length")
        self.threshold_seconds = validate.duration_seconds(p["long_transaction_threshold"],
                                                           "long_transaction_threshold")
        t = p["thresholds"]
        _within(t["connections_percent"], 0, 100, "thresholds.connections_percent")
        _within(t["dead_tuple_ratio"], 0, 1, "thresholds.dead_tuple_ratio")
        _within(t["bloat_ratio"], 0, 1, "thresholds.bloat_ratio")
        validate.positive(t["min_dead_tuples"], "thresholds.min_dead_tuples", allow_zero=True)
        self.bloat_min_bytes = validate.size_bytes(t["bloat_min_size"], "thresholds.bloat_min_size")
        self.replication_lag_bytes = validate.size_bytes(t["replication_lag"], "thresholds.replication_lag")
        self.client = self.own(PostgresClient(p))

    def observe(self):
        server = self.client.query(_SERVER)[0]
        if server["num"] < MIN_SERVER_VERSION:
            raise RunbookError(f"{self.client.label}: pg_report needs PostgreSQL 13 or later, the server runs "
                               f"{server['version']}; use a newer server or query it by hand")
        self.server = server
        report = {name: getattr(self, f"_{name}")() for name in SECTIONS if name in self.params["sections"]}
        report["findings"] = sorted(self.findings, key=lambda f: SEVERITIES.index(f["severity"]))
        report["generated_at"] = server["now"].astimezone(UTC).isoformat()
        report["server_version"] = server["version"]
        report["database"] = server["database"]
        return report

    def report(self, before, after, steps):
        return before

    def _find(self, severity, section, obj, message, value=None, threshold=None):
        self.findings.append({"severity": severity, "section": section, "object": obj, "message": message,
                              "value": value, "threshold": threshold})

    # -- sections ----------------------------------------------------------------------------------
    def _slow_queries(self):
        p = self.params
        database = self.server["database"]
        schema = self.client.scalar(_PGSS_SCHEMA)
        hint = None
        if schema is None:
            hint = (f"run CREATE EXTENSION pg_stat_statements in database {database} (pg_stat_statements must also "
                    "be in shared_preload_libraries, which takes a restart), or connect to a database that has it")
        else:
            statement = sql.SQL(_SLOW_QUERIES).format(view=sql.Identifier(schema, "pg_stat_statements"),
                                                      order=sql.Identifier("s", ORDER_COLUMNS[p["order_by"]]))
            try:
                rows = self.client.query(statement, {"top": p["top"], "query_length": p["query_length"]})
            except RunbookError as exc:
                # 55000: the extension exists but the library was not preloaded at server start.
                if exc.details.get("sqlstate") != "55000":
                    raise
                hint = "add pg_stat_statements to shared_preload_libraries and restart the server"
        if hint:
            self._find("info", "slow_queries", database, f"pg_stat_statements is not available in database "
                       f"{database}: {hint}")
            return {"available": False, "hint": hint}
        return {"available": True, "order_by": p["order_by"], "statements": rows}

    def _connections(self):
        limits = self.client.query(_LIMITS)[0]
        rows = self.client.query(_CONNECTIONS)
        usable = limits["max_connections"] - limits["reserved_connections"]
        total = sum(r["sessions"] for r in rows)
        percent = round(100.0 * total / usable, 1) if usable > 0 else 100.0
        data = dict(limits, usable_connections=usable, total=total, percent_used=percent,
                    free=max(usable - total, 0), **{f"by_{key}": _count_by(rows, key)
                                                    for key in ("state", "database", "user")})
        threshold = self.params["thresholds"]["connections_percent"]
        if percent > threshold:
            # At 100% only superusers can still log in (into the reserved slots).
            severity = "critical" if total >= usable else "warning"
            self._find(severity, "connections", "max_connections",
                       f"{total} of {usable} usable connections in use ({percent}%, max_connections "
                       f"{limits['max_connections']} less {limits['reserved_connections']} reserved); find idle "
                       "sessions or add a connection pooler", percent, threshold)
        return data

    def _sizes(self):
        return {"databases": self.client.query(_DATABASE_SIZES),
                "tables": self.client.query(_TABLE_SIZES, {"top": self.params["top"]})}

    def _bloat(self):
        t = self.params["thresholds"]
        database = self.server["database"]
        tables = self.client.query(_TABLE_BLOAT, {"top": self.params["top"], "dead_ratio": t["dead_tuple_ratio"],
                                                  "min_dead_tuples": t["min_dead_tuples"]})
        indexes = self.client.query(_INDEX_BLOAT, {"top": self.params["top"]})
        for row in tables:
            name = f"{database}.{row['schema']}.{row['table']}"
            if row["dead_tuples"] >= t["min_dead_tuples"] and (row["dead_ratio"] or 0) > t["dead_tuple_ratio"]:
                self._find("warning", "bloat", name,
                           f"table {name} has {row['dead_tuples']} dead tuples ({row['dead_ratio']:.0%} of its rows); "
                           f"check autovacuum or run VACUUM", row["dead_ratio"], t["dead_tuple_ratio"])
            self._flag_bloat("table", name, row["table_bytes"], row["bloat_bytes"], row["bloat_ratio"], "VACUUM FULL")
        for row in indexes:
            name = f"{database}.{row['schema']}.{row['index']}"
            self._flag_bloat("index", name, row["index_bytes"], row["bloat_bytes"], row["bloat_ratio"],
                             "REINDEX CONCURRENTLY")
        return {"tables": tables, "indexes": indexes}

    def _flag_bloat(self, kind, name, size, bloat_bytes, ratio, remedy):
        threshold = self.params["thresholds"]["bloat_ratio"]
        if ratio is not None and ratio > threshold and size >= self.bloat_min_bytes:
            self._find("warning", "bloat", name, f"{kind} {name} is an estimated {ratio:.0%} bloat ({bloat_bytes} of "
                       f"{size} bytes); consider {remedy} (or pg_repack) in a quiet period", ratio, threshold)

    def _long_transactions(self):
        args = {"threshold": self.threshold_seconds, "query_length": self.params["query_length"],
                "top": self.params["top"]}
        transactions = self.client.query(_LONG_TRANSACTIONS, args)
        prepared = self.client.query(_PREPARED, args)
        holders = self.client.query(_XMIN_HOLDERS, args)
        threshold = self.threshold_seconds
        for tx in transactions:
            self._find("warning", "long_transactions", f"pid {tx['pid']}",
                       f"pid {tx['pid']} ({tx['user']}@{tx['database']}, {tx['state']}) has been in a transaction "
                       f"for {tx['age_seconds']:.0f}s; end it or ask its owner (pg_sessions can terminate it)",
                       tx["age_seconds"], threshold)
        for tx in prepared:
            self._find("warning", "long_transactions", f"prepared transaction {tx['gid']}",
                       f"prepared transaction {tx['gid']!r} in {tx['database']} is {tx['age_seconds']:.0f}s old and "
                       "holds back VACUUM; COMMIT PREPARED or ROLLBACK PREPARED it", tx["age_seconds"], threshold)
        for holder in holders:
            if holder["kind"] == "replication_slot" and not holder["active"]:
                self._find("warning", "long_transactions", f"replication slot {holder['name']}",
                           f"inactive replication slot {holder['name']} holds back VACUUM by {holder['xmin_age']} "
                           "transactions; reconnect its consumer or drop the slot", holder["xmin_age"])
        return {"threshold_seconds": threshold, "transactions": transactions, "prepared_transactions": prepared,
                "xmin_holders": holders, "oldest_xmin_holder": holders[0] if holders else None}

    def _replication(self):
        limit = self.replication_lag_bytes
        if not self.server["in_recovery"]:
            standbys = self.client.query(_STANDBYS)
            for s in standbys:
                if (s["lag_bytes"] or 0) > limit:
                    self._find("warning", "replication", f"standby {s['name']}",
                               f"standby {s['name']} ({s['client_addr']}) replays {s['lag_bytes']} bytes behind; "
                               "check its disk, network and load", s["lag_bytes"], limit)
            return {"role": "primary", "standbys": standbys}
        status = self.client.query(_STANDBY_STATUS)[0]
        if status["receiver_status"] != "streaming":
            self._find("warning", "replication", self.client.label,
                       f"this standby is not streaming from its primary (receiver status "
                       f"{status['receiver_status']}); check primary_conninfo and the primary's logs")
        if (status["replay_lag_bytes"] or 0) > limit:
            self._find("warning", "replication", self.client.label,
                       f"this standby has {status['replay_lag_bytes']} bytes received but not replayed; check "
                       "replay conflicts and I/O", status["replay_lag_bytes"], limit)
        return dict(status, role="standby")


def _within(value, low, high, param):
    if not low <= value <= high:
        raise ParameterError(param, f"must be between {low} and {high}, got {value}")


def _count_by(rows, key):
    counts = {}
    for row in rows:
        counts[row[key]] = counts.get(row[key], 0) + row["sessions"]
    return dict(sorted(counts.items()))
