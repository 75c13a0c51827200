#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_maintenance
short_description: VACUUM, ANALYZE and REINDEX PostgreSQL tables where their statistics say it is needed
version_added: 0.1.0
description:
  - Reads C(pg_stat_user_tables) and the size of the B-tree indexes of the user tables of O(db), and runs only
    the maintenance that thresholds call for, so a clean database reports no change.
  - V(vacuum) runs C(VACUUM), or C(VACUUM FULL) with O(full), on tables whose dead tuples reach both
    O(min_dead_tuples) and O(min_dead_tuple_ratio) of their rows, that is C(n_dead_tup) divided by
    C(n_live_tup + n_dead_tup).
  - V(analyze) runs C(ANALYZE) on tables with rows modified since their last analyze (C(n_mod_since_analyze > 0))
    and on tables never analyzed.
  - V(reindex) runs C(REINDEX INDEX CONCURRENTLY) (plain C(REINDEX INDEX) with O(concurrently=false), on
    PostgreSQL older than 12, and for exclusion-constraint indexes) on valid B-tree indexes whose estimated
    bloat reaches O(min_bloat_bytes). Bloat is the index size minus the size of a fresh build of its live
    entries. When the C(pgstattuple) extension is installed in O(db) and the login role may run C(pgstatindex),
    the index is measured with C(pgstatindex) (leaf density, empty and deleted pages), which reads the whole
    index. Otherwise it is estimated from C(n_live_tup) and the widths of the key columns (the type's length, or
    for variable-width types the average width in C(pg_stats)) (C(bloat_method=estimate)). That estimate ignores
    B-tree deduplication and alignment, so it errs towards less bloat, and it cannot be made for partial indexes,
    expression indexes, or variable-width keys of tables never analyzed (C(bloat_method=unknown)); those are not
    reindexed, with a warning. Indexes smaller than O(min_bloat_bytes) are not examined.
  - When a table is vacuumed in the same run, the reindex decision uses the bloat its indexes will have once
    VACUUM removed the entries of its dead rows, so the next run does not find new bloat. VACUUM FULL rebuilds the
    indexes itself, so they are not reindexed again.
  - Per table the order is VACUUM, ANALYZE, then REINDEX. O(lock_timeout) and O(statement_timeout) are set with
    C(SET) on the module's session before anything else, so they bound the statistics queries too.
  - After the work, the statistics are read again. When VACUUM leaves dead tuples above the thresholds because
    an older snapshot still sees them, the module warns and names the session, replication slot or prepared
    transaction holding the oldest snapshot.
  - A REINDEX CONCURRENTLY that fails (for example on O(lock_timeout)) leaves an invalid copy of the index; the
    module drops the copies it made with C(DROP INDEX CONCURRENTLY).
  - Only regular tables and materialized views of O(db) owned by a role O(login_user) belongs to (or all of them
    for a superuser) are considered; system catalogs, partitioned parents (their partitions are tables
    themselves), TOAST tables (vacuumed with their table) and temporary tables are never touched. Other tables
    in scope that O(login_user) does not own are skipped with a warning; naming one in O(tables) fails.
  - Fails on a standby; run it against the primary.
extends_documentation_fragment:
  - ops.runbooks.postgres
  - ops.runbooks.verify
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details: Returns the exact statements that would run in RV(queries) and runs none of them.
  diff_mode:
    support: full
options:
  operations:
    description:
      - The maintenance to consider. Each runs only where its threshold is reached.
    type: list
    elements: str
    choices: [vacuum, analyze, reindex]
    default: [vacuum, analyze]
  full:
    description:
      - Use C(VACUUM FULL), which rewrites the table and its indexes to give the space back to the operating
        system, under an C(ACCESS EXCLUSIVE) lock that blocks reads and writes. Changes how a table is vacuumed,
        not when. Requires V(vacuum) in O(operations).
      - VACUUM FULL does not update the dead-tuple statistics, so the module runs it with the C(ANALYZE) option,
        whose ANALYZE does; otherwise the next run would rewrite the table again. The table is therefore analyzed
        even when V(analyze) is not in O(operations).
    type: bool
    default: false
  schemas:
    description:
      - Only the tables of these schemas. Default is every schema.
      - Names are matched as stored in the catalog (case-sensitive).
      - Mutually exclusive with O(tables).
    type: list
    elements: str
  tables:
    description:
      - Only these tables, as V(table) or V(schema.table). A name without schema must be unique in O(db).
      - Names are matched as stored in the catalog (case-sensitive).
      - Mutually exclusive with O(schemas).
    type: list
    elements: str
  min_dead_tuple_ratio:
    description:
      - VACUUM a table when its dead tuples are at least this fraction (0 to 1) of its rows.
    type: float
    default: 0.1
  min_dead_tuples:
    description:
      - And when it has at least this many dead tuples, so small tables are not vacuumed for a handful of rows
        (the default is the one of C(autovacuum_vacuum_threshold)).
    type: int
    default: 50
  min_bloat_bytes:
    description:
      - REINDEX an index when its estimated bloat reaches this size. A number of bytes or a size with a unit
        such as V(512kB), V(100MB), V(2GB) (powers of 1024). Must be greater than zero; keep it well above a few
        pages (8 kB each), which even a fresh index may show.
    type: str
    default: 100MB
  concurrently:
    description:
      - Use C(REINDEX INDEX CONCURRENTLY), which does not block writes, where the server allows it
        (PostgreSQL 12 and later, not for exclusion-constraint indexes).
    type: bool
    default: true
  lock_timeout:
    description:
      - Give up a statement that waits this long for a lock, instead of queueing every other session behind
        it. Seconds, or a number with a unit such as V(500ms), V(30s), V(5min). V(0) waits forever. Default is
        the server's setting.
    type: str
  statement_timeout:
    description:
      - Cancel any statement of the module that runs longer than this (same format as O(lock_timeout)). Default
        is the server's setting.
    type: str
notes:
  - The statistics are the ones of the cumulative statistics system; other sessions report their changes at
    most about once a second, so changes made in the last second may not be seen yet.
  - Without O(lock_timeout), a statement waits as long as a conflicting lock is held, and every session that
    asks for a conflicting lock afterwards waits behind it.
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Vacuum and analyze the tables of shop that need it
  ops.runbooks.pg_maintenance:
    login_host: db.example.com
    login_user: ops
    login_password: "{{ vault_pg_password }}"
    db: shop
    lock_timeout: 5s

- name: Rebuild bloated indexes of two tables without blocking writes
  ops.runbooks.pg_maintenance:
    db: shop
    operations: [reindex]
    tables: [public.orders, order_lines]
    min_bloat_bytes: 1GB
    lock_timeout: 2s
    statement_timeout: 2h

- name: Give the space of heavily updated tables back to the system, in a maintenance window
  ops.runbooks.pg_maintenance:
    db: shop
    operations: [vacuum, analyze]
    full: true
    schemas: [archive]
    min_dead_tuple_ratio: 0.5
    lock_timeout: 10s
"""

RETURN = r"""
verification:
  description: Result of the O(verify) probes after the change (per-probe details); absent when nothing was probed.
  returned: when O(verify) is set and something changed
  type: dict
objects:
  description: One entry per statement run (or planned in check mode), in order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The table or, for V(reindex), the index, as C(schema.name).
      type: str
      sample: public.orders
    table:
      description: The table the object belongs to.
      type: str
      sample: public.orders
    operation:
      description: V(vacuum), V(analyze) or V(reindex).
      type: str
    statement:
      description: The exact statement.
      type: str
      sample: VACUUM "public"."orders"
    reason:
      description: Why it was needed.
      type: str
      sample: 18000 dead tuples (90.0% of rows)
    duration_seconds:
      description: How long the statement ran; null in check mode.
      type: float
    dead_tuples_before:
      description: C(n_dead_tup) of the table before; null for V(reindex).
      type: int
    dead_tuples_after:
      description: C(n_dead_tup) of the table after the run; null in check mode and for V(reindex).
      type: int
    size_bytes_before:
      description: Size of the table (C(pg_table_size)) or of the index before.
      type: int
    size_bytes_after:
      description: The same after the run; null in check mode.
      type: int
    bloat_bytes_before:
      description: Estimated bloat of the index as it was; null except for V(reindex).
      type: int
    bloat_bytes_after:
      description: Estimated bloat of the rebuilt index; null in check mode and except for V(reindex).
      type: int
  sample:
    - name: public.orders
      table: public.orders
      operation: vacuum
      statement: VACUUM "public"."orders"
      reason: 18000 dead tuples (90.0% of rows)
      duration_seconds: 0.042
      dead_tuples_before: 18000
      dead_tuples_after: 0
      size_bytes_before: 925696
      size_bytes_after: 925696
      bloat_bytes_before: null
      bloat_bytes_after: null
queries:
  description:
    - The statements run, or in check mode the statements that would run, starting with the C(SET) of the
      session timeouts. Empty when there is nothing to do.
  returned: always
  type: list
  elements: str
  sample: ["SET lock_timeout = '5000ms'", "VACUUM \"public\".\"orders\"", "ANALYZE \"public\".\"orders\""]
examined:
  description: How many tables, and B-tree indexes big enough to reach O(min_bloat_bytes), were examined.
  returned: always
  type: dict
  sample: {tables: 42, indexes: 3}
plan:
  description: Human-readable list of the statements and why, one per object.
  returned: always
  type: list
  elements: str
  sample: ["VACUUM public.orders: 18000 dead tuples (90.0% of rows)"]
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
diff:
  description:
    - Statistics of the tables and examined indexes (dead tuples, modifications since analyze, last vacuum and
      analyze, sizes, bloat) before and after; in check mode, after is the prediction.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_maintenance import PgMaintenance


def main():
    run_procedure(PgMaintenance)


if __name__ == "__main__":
    main()
