#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_report
short_description: Gather the facts of a daily PostgreSQL operations report
version_added: 0.1.0
description:
  - Reads, and never changes, what a daily operations report needs from one PostgreSQL server, in sections
    chosen with O(sections).
  - V(slow_queries) lists the top statements from C(pg_stat_statements) (all databases). When the extension is not
    created in the connected database, or its library is not preloaded, the section says so with a hint
    instead of failing.
  - V(connections) counts client sessions against C(max_connections) less the reserved slots
    (C(superuser_reserved_connections), and C(reserved_connections) from PostgreSQL 16).
  - V(sizes) lists every database's size and the largest tables of the connected database.
  - V(bloat) estimates table and index bloat in the connected database. For tables it reports the dead tuple
    ratio from C(pg_stat_user_tables) and a size-based estimate; for B-tree indexes a size-based estimate.
    The estimate compares the relation's size with the pages its rows would need, each row sized from the
    average column widths in C(pg_stats) plus tuple header and line pointer and packed up to the fillfactor.
    Relations never analyzed, expression indexes and non-B-tree indexes get no estimate (null).
    It is an estimate; use the C(pgstattuple) extension for exact numbers.
  - V(long_transactions) lists transactions open longer than O(long_transaction_threshold), prepared
    transactions older than it, and everything holding back the xmin horizon (sessions, prepared transactions,
    replication slots), oldest first.
  - V(replication) is a short summary (role, standbys and their lag on a primary, replay lag on a standby).
  - Every threshold crossed adds an entry to RV(findings), which a report can print as is.
extends_documentation_fragment:
  - ops.runbooks.postgres
  - ops.runbooks.attributes.INFO_MODULE
options:
  sections:
    description:
      - The sections to gather. Sections left out are not queried and not returned.
    type: list
    elements: str
    choices: [slow_queries, connections, sizes, bloat, long_transactions, replication]
    default: [slow_queries, connections, sizes, bloat, long_transactions, replication]
  top:
    description:
      - How many entries to list in each ranked list (statements, tables, table and index bloat, xmin holders).
    type: int
    default: 10
  order_by:
    description:
      - How to rank statements in V(slow_queries) (C(total_exec_time), C(mean_exec_time) or C(calls)).
    type: str
    default: total_time
    choices: [calls, mean_time, total_time]
  query_length:
    description:
      - Query texts are returned with whitespace collapsed and cut to this many characters.
    type: int
    default: 200
  long_transaction_threshold:
    description:
      - Transactions open longer than this are listed in V(long_transactions) and reported as findings.
      - Seconds, or a number with a unit such as V(500ms), V(30s), V(5min), V(2h), V(1d). V(0) lists every
        open transaction.
    type: str
    default: 5min
  thresholds:
    description:
      - When a value crosses one of these, an entry is added to RV(findings).
    type: dict
    default: {}
    suboptions:
      connections_percent:
        description:
          - Percentage of usable connections in use above which a V(warning) is raised; when no usable
            connection is left the finding is V(critical).
        type: float
        default: 80.0
      dead_tuple_ratio:
        description:
          - Dead tuples as a fraction of all tuples (0 to 1) above which a table is reported.
        type: float
        default: 0.2
      min_dead_tuples:
        description:
          - Tables with fewer dead tuples than this are never reported for their dead tuple ratio.
        type: int
        default: 1000
      bloat_ratio:
        description:
          - Estimated bloat as a fraction of the relation's size (0 to 1) above which a table or index is reported.
        type: float
        default: 0.5
      bloat_min_size:
        description:
          - Tables and indexes smaller than this are never reported for bloat. Bytes or e.g. V(512kB), V(100MB), V(1GB).
        type: str
        default: 100MB
      replication_lag:
        description:
          - Replay lag (size of WAL not yet replayed) above which a standby is reported. Same format as
            O(thresholds.bloat_min_size).
        type: str
        default: 64MB
notes:
  - Needs PostgreSQL 13 or later.
  - Connect as a superuser or a member of C(pg_monitor); other roles see C(<insufficient privilege>) for other
    users' queries, no session states (counted as V(unknown)) and no replication positions.
  - V(bloat) and the table list of V(sizes) cover the connected database only; pick it with O(db).
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Gather the daily report
  ops.runbooks.pg_report:
    login_host: db.example.com
    login_user: monitor
    login_password: "{{ vault_pg_password }}"
    db: shop
  register: daily

- name: Print the findings
  ansible.builtin.debug:
    msg: "{{ item.severity | upper }} {{ item.message }}"
  loop: "{{ daily.findings }}"

- name: Top 5 statements by calls and the connection picture only, flagging 60% connection use
  ops.runbooks.pg_report:
    sections: [slow_queries, connections]
    top: 5
    order_by: calls
    thresholds:
      connections_percent: 60
"""

RETURN = r"""
generated_at:
  description: The server's time when the report was gathered (ISO 8601, UTC).
  returned: always
  type: str
  sample: "2024-11-23T06:00:01.123456+00:00"
server_version:
  description: The server's version string.
  returned: always
  type: str
  sample: 15.18 (Debian 15.18-0+deb12u1)
database:
  description: The connected database, which V(bloat) and the tables of V(sizes) describe.
  returned: always
  type: str
  sample: shop
findings:
  description: Every threshold crossed, the most severe first.
  returned: always
  type: list
  elements: dict
  contains:
    severity:
      description: V(critical), V(warning) or V(info).
      type: str
    section:
      description: The section the finding comes from.
      type: str
    object:
      description: What the finding is about (a pid, C(database.schema.table), a standby, a slot...).
      type: str
    message:
      description: One line naming the object, the problem and what to do.
      type: str
    value:
      description: The measured value, when there is one.
      type: raw
    threshold:
      description: The threshold it crossed, when there is one.
      type: raw
  sample:
    - severity: warning
      section: long_transactions
      object: pid 4242
      message: "pid 4242 (app@shop, idle in transaction) has been in a transaction for 812s; end it or ask its
        owner (pg_sessions can terminate it)"
      value: 812.4
      threshold: 300.0
slow_queries:
  description: Statements from C(pg_stat_statements), ranked by O(order_by).
  returned: when V(slow_queries) is in O(sections)
  type: dict
  contains:
    available:
      description: Whether C(pg_stat_statements) could be read.
      type: bool
    hint:
      description: How to make it available.
      type: str
      returned: when not available
    order_by:
      description: The ranking used.
      type: str
      returned: when available
    statements:
      description:
        - The top O(top) statements with C(database), C(user), C(queryid), C(calls), C(rows), C(total_time_ms),
          C(mean_time_ms), C(max_time_ms), C(percent_total_time) (share of all statements' time) and C(query).
      type: list
      elements: dict
      returned: when available
  sample:
    available: true
    order_by: total_time
    statements:
      - {database: shop, user: app, queryid: 123456789, calls: 5000, rows: 5000, total_time_ms: 812.3,
         mean_time_ms: 0.162, max_time_ms: 3.1, percent_total_time: 41.2, query: "SELECT * FROM orders WHERE id = $1"}
connections:
  description: Client sessions against the connection limit.
  returned: when V(connections) is in O(sections)
  type: dict
  contains:
    max_connections:
      description: The server's C(max_connections).
      type: int
    reserved_connections:
      description: Slots only superusers (or C(pg_use_reserved_connections) members) can use.
      type: int
    usable_connections:
      description: C(max_connections) less the reserved slots.
      type: int
    total:
      description: Client sessions, this module's own included.
      type: int
    free:
      description: Usable slots left.
      type: int
    percent_used:
      description: RV(connections.total) as a percentage of RV(connections.usable_connections).
      type: float
    by_state:
      description: Sessions per state (V(unknown) when not visible to the login role).
      type: dict
    by_database:
      description: Sessions per database.
      type: dict
    by_user:
      description: Sessions per role.
      type: dict
  sample:
    {max_connections: 100, reserved_connections: 3, usable_connections: 97, total: 12, free: 85, percent_used: 12.4,
     by_state: {active: 1, idle: 11}, by_database: {shop: 12}, by_user: {app: 11, monitor: 1}}
sizes:
  description: Database and table sizes in bytes.
  returned: when V(sizes) is in O(sections)
  type: dict
  contains:
    databases:
      description: Every database with C(database) and C(bytes) (null without CONNECT privilege), largest first.
      type: list
      elements: dict
    tables:
      description:
        - The O(top) largest tables and materialized views of the connected database with C(schema), C(table),
          C(total_bytes) = C(table_bytes) (heap, free space and visibility maps) + C(index_bytes) + C(toast_bytes).
      type: list
      elements: dict
  sample:
    databases: [{database: shop, bytes: 1073741824}]
    tables: [{schema: public, table: orders, total_bytes: 524288000, table_bytes: 400000000,
              index_bytes: 120000000, toast_bytes: 4288000}]
bloat:
  description: Bloat estimates for the connected database (see the description for the method).
  returned: when V(bloat) is in O(sections)
  type: dict
  contains:
    tables:
      description:
        - Up to O(top) tables with C(schema), C(table), C(live_tuples), C(dead_tuples), C(dead_ratio),
          C(table_bytes), C(bloat_bytes), C(bloat_ratio) and C(last_vacuum) (manual or auto).
        - Tables over the dead tuple thresholds come first, then by estimated bloat.
      type: list
      elements: dict
    indexes:
      description:
        - Up to O(top) indexes with C(schema), C(table), C(index), C(method), C(index_bytes), C(scans),
          C(bloat_bytes) and C(bloat_ratio), by estimated bloat.
      type: list
      elements: dict
  sample:
    tables: [{schema: public, table: orders, live_tuples: 1000000, dead_tuples: 400000, dead_ratio: 0.2857,
              table_bytes: 400000000, bloat_bytes: 120000000, bloat_ratio: 0.3, last_vacuum: "2024-11-22 03:00:00+00"}]
    indexes: [{schema: public, table: orders, index: orders_pkey, method: btree, index_bytes: 40000000,
               scans: 123456, bloat_bytes: 8000000, bloat_ratio: 0.2}]
long_transactions:
  description: Old transactions and what holds back VACUUM.
  returned: when V(long_transactions) is in O(sections)
  type: dict
  contains:
    threshold_seconds:
      description: O(long_transaction_threshold) in seconds.
      type: float
    transactions:
      description:
        - Every session (this module's excepted) whose transaction is older than the threshold, oldest first, with
          C(pid), C(user), C(database), C(application_name), C(client_addr), C(backend_type), C(state),
          C(age_seconds) and C(query).
      type: list
      elements: dict
    prepared_transactions:
      description: Prepared transactions older than the threshold with C(gid), C(user), C(database), C(xmin_age)
        and C(age_seconds).
      type: list
      elements: dict
    xmin_holders:
      description:
        - Up to O(top) holders of the xmin horizon, by age in transactions, with C(kind) (V(backend),
          V(prepared_transaction) or V(replication_slot)), C(name) (pid, gid or slot name), C(database),
          C(user), C(active) and C(xmin_age).
      type: list
      elements: dict
    oldest_xmin_holder:
      description: The first of RV(long_transactions.xmin_holders), or null.
      type: dict
  sample:
    threshold_seconds: 300.0
    transactions: [{pid: 4242, user: app, database: shop, application_name: api, client_addr: 10.0.0.7,
                    backend_type: client backend, state: idle in transaction, age_seconds: 812.4, query: SELECT 1}]
    prepared_transactions: []
    xmin_holders: [{kind: backend, name: "4242", database: shop, user: app, active: true, xmin_age: 5120}]
    oldest_xmin_holder: {kind: backend, name: "4242", database: shop, user: app, active: true, xmin_age: 5120}
replication:
  description: A short replication summary.
  returned: when V(replication) is in O(sections)
  type: dict
  contains:
    role:
      description: V(primary) or V(standby).
      type: str
    standbys:
      description: On a primary, each connected standby with C(name) (its application_name), C(client_addr),
        C(state), C(sync_state), C(lag_bytes) (WAL not yet replayed) and C(replay_lag_seconds).
      type: list
      elements: dict
      returned: on a primary
    receiver_status:
      description: On a standby, the WAL receiver's status (V(streaming) when healthy, null when not running).
      type: str
      returned: on a standby
    upstream_host:
      description: On a standby, the host it receives WAL from.
      type: str
      returned: on a standby
    replay_lag_bytes:
      description: On a standby, WAL received but not yet replayed.
      type: int
      returned: on a standby
    last_replay_age_seconds:
      description: On a standby, seconds since the last replayed transaction committed on the primary (grows
        when the primary is idle, too).
      type: float
      returned: on a standby
    replay_paused:
      description: On a standby, whether replay is paused.
      type: bool
      returned: on a standby
  sample:
    role: primary
    standbys: [{name: replica1, client_addr: 10.0.0.8, state: streaming, sync_state: async, lag_bytes: 0,
                replay_lag_seconds: 0.002}]
plan:
  description: Always empty; the module changes nothing.
  returned: always
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_report import PgReport


def main():
    run_procedure(PgReport)


if __name__ == "__main__":
    main()
