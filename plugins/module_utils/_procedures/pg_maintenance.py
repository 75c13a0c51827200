# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""VACUUM, ANALYZE and REINDEX the user tables of one database, only where the statistics say it is needed."""

from __future__ import annotations

import math

from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import REQUIREMENT, PostgresClient, sql
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    postgres_connection_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step

OPERATIONS = ["vacuum", "analyze", "reindex"]
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
# Bytes a B-tree page gives to tuples: block minus page header (24) and B-tree special space (16).
_BTREE_PAGE_OVERHEAD = 40

# Regular tables and materialized views only: partitioned parents have no storage of their own (their
# partitions are listed themselves), and temporary tables of other sessions cannot be vacuumed.
_TABLES = """
SELECT s.relid AS oid, s.schemaname AS schema, s.relname AS table, s.n_live_tup, s.n_dead_tup,
       s.n_mod_since_analyze, greatest(s.last_vacuum, s.last_autovacuum)::text AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze)::text AS last_analyze, pg_table_size(s.relid) AS size_bytes,
       pg_has_role(c.relowner, 'USAGE') AS owned
  FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
 WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
   AND (%(schemas)s::text[] IS NULL OR s.schemaname = ANY(%(schemas)s::text[]))
   AND (%(names)s::text[] IS NULL OR s.relname = ANY(%(names)s::text[]))
 ORDER BY s.schemaname, s.relname
"""

# Valid B-tree indexes of the tables in scope that are big enough to hold min_bloat_bytes of bloat, and the ones
# this run reindexed (to report their new size). key_width (for the estimate without pgstattuple) adds the type's
# length for fixed-width keys, else the average width ANALYZE saw; NULL when a key is an expression or a
# variable-width column without statistics yet.
_INDEXES = """
SELECT i.indexrelid AS oid, i.indrelid AS table_oid, ic.relname AS index, pg_relation_size(i.indexrelid) AS size_bytes,
       current_setting('block_size')::int AS block_size,
       coalesce((SELECT option_value::int FROM pg_options_to_table(ic.reloptions)
                  WHERE option_name = 'fillfactor'), 90) AS fillfactor,
       i.indpred IS NOT NULL AS partial,
       EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = i.indexrelid AND contype = 'x') AS exclusion,
       (SELECT CASE WHEN bool_and(w.width IS NOT NULL) THEN sum(w.width) END
          FROM unnest(i.indkey::int2[]) AS k(attnum)
          LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          LEFT JOIN pg_type ty ON ty.oid = a.atttypid
          LEFT JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = t.relname
                               AND st.attname = a.attname AND NOT st.inherited
          CROSS JOIN LATERAL (SELECT coalesce(CASE WHEN ty.typlen > 0 THEN ty.typlen END, st.avg_width)) AS w(width)
       ) AS key_width,
       {stats}
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  {stats_join}
 WHERE i.indrelid = ANY(%(tables)s::oid[]) AND am.amname = 'btree'
   AND i.indisvalid AND i.indisready AND i.indislive
   AND (pg_relation_size(i.indexrelid) >= %(min_bytes)s OR n.nspname || '.' || ic.relname = ANY(%(reindexed)s))
 ORDER BY n.nspname, ic.relname
"""
_STAT_COLUMNS = ("index_size", "internal_pages", "leaf_pages", "empty_pages", "deleted_pages", "avg_leaf_density")

_PGSTATINDEX = """
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pgstattuple'
   AND has_function_privilege(to_regprocedure(format('%I.pgstatindex(regclass)', n.nspname)), 'EXECUTE')
"""
_INVALID_INDEXES = """
SELECT n.nspname AS schema, c.relname AS index FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE i.indrelid = %s AND NOT i.indisvalid
"""
_LOCK_HOLDERS = """
SELECT DISTINCT format('pid %%s (%%s, application %%L, %%s)', a.pid, a.usename, a.application_name, a.state) AS holder
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.relation = ANY(%s::oid[]) AND l.granted AND l.pid <> pg_backend_pid()
"""
# Whoever holds the oldest snapshot or transaction keeps VACUUM from removing newer dead rows: a session of this
# database, a walsender relaying hot_standby_feedback, a replication slot or a prepared transaction.
_XMIN_HOLDER = """
SELECT holder FROM (
  SELECT format('session pid %s (%s@%s, application %L, %s since %s)', pid, usename, coalesce(datname, 'replication'),
                application_name, state, date_trunc('second', state_change)) AS holder,
         greatest(age(backend_xmin), age(backend_xid)) AS xmin_age
    FROM pg_stat_activity
   WHERE pid <> pg_backend_pid() AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)
     AND (datname = current_database() OR backend_type = 'walsender')
  UNION ALL
  SELECT format('replication slot %s', slot_name), age(xmin) FROM pg_replication_slots WHERE xmin IS NOT NULL
  UNION ALL
  SELECT format('prepared transaction %L', gid), age(transaction) FROM pg_prepared_xacts
   WHERE database = current_database()
) h ORDER BY xmin_age DESC LIMIT 1
"""


def dead_ratio(table):
    rows = table["n_live_tup"] + table["n_dead_tup"]
    return table["n_dead_tup"] / rows if rows else 0.0


def needs_vacuum(table, min_ratio, min_dead):
    # n_dead_tup > 0 keeps zero thresholds from vacuuming a clean table on every run.
    return table["n_dead_tup"] > 0 and table["n_dead_tup"] >= min_dead and dead_ratio(table) >= min_ratio


def needs_analyze(table):
    return table["n_mod_since_analyze"] > 0 or table["last_analyze"] is None


def pgstatindex_bloat(stats, fillfactor, block_size, live_fraction=1.0):
    """Bytes above what a fresh build (leaves filled to ``fillfactor``) of the index's live entries would take.

    ``live_fraction`` scales the leaf entries down to the ones that survive a VACUUM, which removes the entries of
    dead rows; 1.0 measures the index as it is.
    """
    density = stats["avg_leaf_density"]
    if not stats["leaf_pages"] or density is None or math.isnan(density):
        density = 0.0
    ideal_leaves = math.ceil(stats["leaf_pages"] * density / fillfactor * live_fraction)
    return max(0, stats["index_size"] - (1 + stats["internal_pages"] + ideal_leaves) * block_size)


def estimated_bloat(size_bytes, live_rows, key_width, fillfactor, block_size):
    """Bloat of a B-tree estimated from row count and column widths (pg_stats), or None when widths are unknown.

    An index tuple is an 8-byte header plus its keys, padded to 8 bytes, plus a 4-byte line pointer. Duplicate
    keys are deduplicated since PostgreSQL 13, so this overestimates the ideal size (underestimates bloat).
    """
    if key_width is None:
        return None
    tuple_bytes = 8 * math.ceil((8 + key_width) / 8) + 4
    per_page = max(1, int((block_size - _BTREE_PAGE_OVERHEAD) * fillfactor / 100 // tuple_bytes))
    leaves = math.ceil(max(live_rows, 0) / per_page)
    internal = math.ceil(leaves / per_page) if leaves > 1 else 0
    return max(0, size_bytes - (1 + leaves + internal) * block_size)


def _ms(seconds):
    return f"{math.ceil(seconds * 1000)}ms"


class PgMaintenance(Procedure):
    requirements = (REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                operations=dict(type="list", elements="str", choices=OPERATIONS, default=["vacuum", "analyze"]),
                full=dict(type="bool", default=False),
                schemas=dict(type="list", elements="str"),
                tables=dict(type="list", elements="str"),
                min_dead_tuple_ratio=dict(type="float", default=0.1),
                min_dead_tuples=dict(type="int", default=50),
                min_bloat_bytes=dict(type="str", default="100MB"),
                concurrently=dict(type="bool", default=True),
                lock_timeout=dict(type="str"),
                statement_timeout=dict(type="str"),
            ),
            mutually_exclusive=[["schemas", "tables"]],
        )
        return spec.merge(postgres_connection_argspec()).merge(verify_argspec())

    # -- input ---------------------------------------------------------------------------------------------------
    def validate(self):
        p = self.params
        if not p["operations"]:
            raise ParameterError("operations", f"choose at least one of {OPERATIONS}")
        if p["full"] and "vacuum" not in p["operations"]:
            raise ParameterError("full", "applies to VACUUM only; add vacuum to operations or drop full")
        self.schemas = [s for (s,) in validate.identifiers(p["schemas"], "schemas")]
        self.tables = list(dict.fromkeys(validate.identifiers(p["tables"], "tables", max_parts=2)))
        if not 0 <= p["min_dead_tuple_ratio"] <= 1:
            raise ParameterError("min_dead_tuple_ratio", "must be a fraction of the table's rows between 0 and 1, "
                                                         f"got {p['min_dead_tuple_ratio']}")
        validate.positive(p["min_dead_tuples"], "min_dead_tuples", allow_zero=True)
        self.min_bloat = validate.positive(validate.size_bytes(p["min_bloat_bytes"], "min_bloat_bytes"),
                                           "min_bloat_bytes")
        timeouts = {name: validate.duration_seconds(p[name], name) for name in ("lock_timeout", "statement_timeout")}
        self.session = [sql.SQL("SET {} = {}").format(sql.SQL(name), sql.Literal(_ms(seconds)))
                        for name, seconds in timeouts.items() if seconds is not None]
        self.not_owned = []
        self.reindexed = []
        self.client = self.own(PostgresClient(p))

    # -- state ---------------------------------------------------------------------------------------------------
    def observe(self):
        if self.client.in_recovery():
            raise RunbookError(f"{self.client.label} is a standby in recovery; VACUUM, ANALYZE and REINDEX must run "
                               "on the primary: point login_host/login_port at it")
        for statement in self.session:  # session settings only; they also bound the statistics queries
            self.client.query(statement)
        tables = self._tables()
        indexes = self._indexes(tables) if "reindex" in self.params["operations"] else []
        return {"tables": tables, "indexes": indexes}

    def _tables(self):
        p = self.params
        if self.schemas:
            found = {r["nspname"] for r in self.client.query(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (self.schemas,))}
            missing = [s for s in self.schemas if s not in found]
            if missing:
                raise RunbookError(f"schemas: {missing} do not exist in database {p['db']}; check the names "
                                   "(they are case-sensitive)", parameter="schemas")
        rows = self.client.query(_TABLES, {"schemas": self.schemas or None,
                                           "names": [t[-1] for t in self.tables] or None})
        rows = self._pick(rows) if self.tables else rows
        self.not_owned = [f"{r['schema']}.{r['table']}" for r in rows if not r["owned"]]
        return [dict({k: v for k, v in r.items() if k != "owned"}, name=f"{r['schema']}.{r['table']}")
                for r in rows if r["owned"]]

    def _pick(self, rows):
        picked = []
        for i, parts in enumerate(self.tables):
            spec = ".".join(parts)
            matches = [r for r in rows if r["table"] == parts[-1] and (len(parts) == 1 or r["schema"] == parts[0])]
            if not matches:
                raise RunbookError(f"tables[{i}]: no user table {spec!r} in database {self.params['db']}; check the "
                                   "name (names are case-sensitive)", parameter="tables")
            if len(matches) > 1:
                raise RunbookError(f"tables[{i}]: {spec!r} exists in schemas {[r['schema'] for r in matches]}; "
                                   "write it as schema.table", parameter="tables")
            if not matches[0]["owned"]:
                raise RunbookError(f"tables[{i}]: {self.params['login_user']} does not own {spec!r}; connect as its "
                                   "owner or a superuser", parameter="tables")
            if matches[0] not in picked:
                picked.append(matches[0])
        return picked

    def _indexes(self, tables):
        if not tables:
            return []
        schema = self.client.scalar(_PGSTATINDEX)
        if schema:
            stats = sql.SQL(", ").join(sql.SQL("st.{}").format(sql.Identifier(c)) for c in _STAT_COLUMNS)
            stats_join = sql.SQL("CROSS JOIN LATERAL {}(i.indexrelid::regclass) st").format(
                sql.Identifier(schema, "pgstatindex"))
        else:
            stats = sql.SQL(", ").join(sql.SQL("NULL AS {}").format(sql.Identifier(c)) for c in _STAT_COLUMNS)
            stats_join = sql.SQL("")
        query = sql.SQL(_INDEXES).format(stats=stats, stats_join=stats_join)
        by_oid = {t["oid"]: t for t in tables}
        rows = self.client.query(query, {"tables": list(by_oid), "min_bytes": self.min_bloat,
                                         "reindexed": self.reindexed})
        return [self._index_state(r, by_oid[r["table_oid"]], measured=bool(schema)) for r in rows]

    @staticmethod
    def _index_state(row, table, measured):
        state = {"name": f"{table['schema']}.{row['index']}", "schema": table["schema"], "index": row["index"],
                 "oid": row["oid"], "table": table["name"],
                 "table_oid": table["oid"], "size_bytes": row["size_bytes"], "exclusion": row["exclusion"]}
        if measured:
            args = (row, row["fillfactor"], row["block_size"])
            live = 1 - dead_ratio(table)
            return dict(state, bloat_method="pgstatindex", bloat_bytes=pgstatindex_bloat(*args),
                        bloat_bytes_after_vacuum=pgstatindex_bloat(*args, live_fraction=live))
        # Partial indexes cover an unknown share of the rows, so their expected size cannot be estimated.
        bloat = None if row["partial"] else estimated_bloat(row["size_bytes"], table["n_live_tup"], row["key_width"],
                                                            row["fillfactor"], row["block_size"])
        return dict(state, bloat_method="estimate" if bloat is not None else "unknown", bloat_bytes=bloat,
                    bloat_bytes_after_vacuum=bloat)

    # -- plan ----------------------------------------------------------------------------------------------------
    def _needs_vacuum(self, table):
        return needs_vacuum(table, self.params["min_dead_tuple_ratio"], self.params["min_dead_tuples"])

    def plan(self, before):
        p = self.params
        ops = p["operations"]
        indexes = {}
        for index in before["indexes"]:
            indexes.setdefault(index["table"], []).append(index)
        concurrently = p["concurrently"] and self.client.server_version_num >= 120000
        steps = []
        for table in before["tables"]:
            vacuum = "vacuum" in ops and self._needs_vacuum(table)
            if vacuum:
                # VACUUM FULL does not report to the statistics (n_dead_tup would stay as it was and the next run
                # would rewrite the table again); the ANALYZE that follows it does.
                statement = sql.SQL("VACUUM (FULL, ANALYZE) {}" if p["full"] else "VACUUM {}").format(
                    self._ident(table))
                steps.append(self._step("VACUUM FULL" if p["full"] else "VACUUM", table, statement,
                                        f"{table['n_dead_tup']} dead tuples ({dead_ratio(table):.1%} of rows)"))
            if "analyze" in ops and needs_analyze(table) and not (vacuum and p["full"]):
                reason = (f"{table['n_mod_since_analyze']} rows modified since the last analyze"
                          if table["last_analyze"] else "never analyzed")
                steps.append(self._step("ANALYZE", table, sql.SQL("ANALYZE {}").format(self._ident(table)), reason))
            if vacuum and p["full"]:
                continue  # VACUUM FULL rebuilds every index of the table
            for index in indexes.get(table["name"], []):
                bloat = index["bloat_bytes_after_vacuum" if vacuum else "bloat_bytes"]
                if bloat is not None and bloat >= self.min_bloat:
                    # Exclusion-constraint indexes cannot be rebuilt concurrently.
                    steps.append(self._reindex_step(index, table, bloat, concurrently and not index["exclusion"]))
        self.reindexed = [s.details["object"]["name"] for s in steps if s.details["object"]["operation"] == "reindex"]
        unknown = [i["name"] for i in before["indexes"] if i["bloat_bytes"] is None]
        if unknown:
            self.warnings.append(f"could not estimate the bloat of {unknown[:10]} (expression or partial index, or no "
                                 "statistics yet): they are not reindexed; ANALYZE their tables or install the "
                                 "pgstattuple extension to measure them")
        if p["concurrently"] and not concurrently and self.reindexed:
            self.warnings.append("the server is older than PostgreSQL 12: REINDEX cannot run CONCURRENTLY and "
                                 "blocks writes to the table while it runs")
        return steps

    @staticmethod
    def _ident(table):
        return sql.Identifier(table["schema"], table["table"])

    def _step(self, operation, table, statement, reason, oids=(), **extra):
        obj = dict(name=table["name"], table=table["name"], operation=operation.split()[0].lower(),
                   statement=self.client.render(statement), reason=reason, dead_tuples_before=table["n_dead_tup"],
                   size_bytes_before=table["size_bytes"], bloat_bytes_before=None)
        obj.update(extra)
        what = f"{operation} of {obj['name']}"
        action = self._runner(what, statement, [table["oid"], *oids])
        return Step(f"{operation} {obj['name']}: {reason}", action, object=obj)

    def _reindex_step(self, index, table, bloat, concurrently):
        operation = "REINDEX CONCURRENTLY" if concurrently else "REINDEX"
        statement = sql.SQL("REINDEX INDEX CONCURRENTLY {}" if concurrently else "REINDEX INDEX {}").format(
            sql.Identifier(index["schema"], index["index"]))
        step = self._step(operation, table, statement,
                          f"{bloat} bytes of bloat ({index['bloat_method']}) in {index['size_bytes']} bytes",
                          oids=[index["oid"]], name=index["name"], dead_tuples_before=None,
                          size_bytes_before=index["size_bytes"], bloat_bytes_before=index["bloat_bytes"])
        if concurrently:
            step.action = self._dropping_leftovers(step.action, table["oid"])
        return step

    # -- apply ---------------------------------------------------------------------------------------------------
    def _runner(self, what, statement, oids):
        def run():
            try:
                self.client.execute(statement)
            except RunbookError as exc:
                raise self._explain(what, oids, exc) from None
        return run

    def _explain(self, what, oids, exc):
        p = self.params
        if exc.details.get("sqlstate") == LOCK_NOT_AVAILABLE:
            holders = [r["holder"] for r in self.client.query(_LOCK_HOLDERS, (oids,))]
            # With no lock on the relations left, it was waiting for older transactions (REINDEX CONCURRENTLY
            # waits for every snapshot older than its new index).
            blocker = (f"a lock held by {', '.join(holders)}" if holders else
                       f"older transactions, the oldest held by {self.client.scalar(_XMIN_HOLDER) or 'one now gone'}")
            return RunbookError(
                f"{what} gave up after lock_timeout {p['lock_timeout']} waiting for {blocker}; retry when they are "
                "done, end them or raise lock_timeout", sqlstate=LOCK_NOT_AVAILABLE, lock_holders=holders)
        if exc.details.get("sqlstate") == QUERY_CANCELED and p["statement_timeout"]:
            return RunbookError(f"{what} was cancelled by statement_timeout {p['statement_timeout']}; raise "
                                "statement_timeout or run it in a quieter window", sqlstate=QUERY_CANCELED)
        return RunbookError(f"{what} failed: {exc.msg}", **exc.details)

    def _dropping_leftovers(self, action, table_oid):
        """A failed REINDEX CONCURRENTLY leaves an invalid copy of the index behind; drop the copies it made."""

        def invalid():
            return {(r["schema"], r["index"]) for r in self.client.query(_INVALID_INDEXES, (table_oid,))}

        def run():
            existing = invalid()
            try:
                return action()
            except RunbookError as exc:
                left = sorted(invalid() - existing)
                try:
                    for schema, name in left:
                        self.client.execute(sql.SQL("DROP INDEX CONCURRENTLY {}").format(sql.Identifier(schema, name)))
                except RunbookError as drop:
                    exc.msg += (f"; the invalid index copies {left} could not be dropped ({drop.msg}): drop them with "
                                "DROP INDEX CONCURRENTLY")
                else:
                    exc.details["dropped_invalid_indexes"] = [f"{schema}.{name}" for schema, name in left]
                raise
        return run

    def verify(self, before, applied):
        # Dead rows still visible to an older snapshot survive VACUUM; say who holds them instead of pretending.
        vacuumed = {s.details["object"]["table"] for s in applied if s.details["object"]["operation"] == "vacuum"}
        if not vacuumed:
            return
        left = [t for t in self._tables() if t["name"] in vacuumed and self._needs_vacuum(t)]
        if left:
            holder = self.client.scalar(_XMIN_HOLDER)
            counts = ", ".join(f"{t['name']} ({t['n_dead_tup']} dead tuples)" for t in left)
            self.warnings.append(
                f"VACUUM could not remove enough dead tuples from {counts}: "
                + (f"the oldest snapshot is held by {holder}; end it (or drop the slot) and run again" if holder else
                   "no older snapshot is held now; they were probably still visible when VACUUM ran, run again"))

    # -- results -------------------------------------------------------------------------------------------------
    def project(self, before, steps):
        ops = {(s.details["object"]["name"], s.details["object"]["operation"]) for s in steps}
        if self.params["full"]:
            ops |= {(name, "analyze") for name, op in ops if op == "vacuum"}
        tables = [dict(t, n_dead_tup=0 if (t["name"], "vacuum") in ops else t["n_dead_tup"],
                       n_mod_since_analyze=0 if (t["name"], "analyze") in ops else t["n_mod_since_analyze"])
                  for t in before["tables"]]
        indexes = [dict(i, bloat_bytes=0) if (i["name"], "reindex") in ops else i for i in before["indexes"]]
        return {"tables": tables, "indexes": indexes}

    def report(self, before, after, steps):
        tables = {t["name"]: t for t in after["tables"]}
        indexes = {i["name"]: i for i in after["indexes"]}
        objects = []
        for step in steps:
            obj = dict(step.details["object"], duration_seconds=step.seconds,
                       dead_tuples_after=None, size_bytes_after=None, bloat_bytes_after=None)
            if not self.check_mode:
                if obj["operation"] == "reindex":
                    index = indexes.get(obj["name"], {})
                    obj.update(size_bytes_after=index.get("size_bytes"), bloat_bytes_after=index.get("bloat_bytes"))
                else:
                    table = tables.get(obj["table"], {})
                    obj.update(dead_tuples_after=table.get("n_dead_tup"), size_bytes_after=table.get("size_bytes"))
            objects.append(obj)
        if self.not_owned:
            self.warnings.append(f"skipped {len(self.not_owned)} table(s) {self.params['login_user']} does not own: "
                                 f"{self.not_owned[:10]}")
        statements = [o["statement"] for o in objects] if self.check_mode else self.client.executed
        queries = [self.client.render(s) for s in self.session] + statements if steps else []
        return {"objects": objects, "queries": queries,
                "examined": {"tables": len(before["tables"]), "indexes": len(before["indexes"])}}
