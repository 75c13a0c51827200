#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_promote
short_description: Promote a PostgreSQL standby to primary, refusing when its lag breaks the RPO
version_added: 0.1.0
description:
  - Promotes the standby the connection options point at, through the O(platform) backend, and waits until it
    accepts writes (out of recovery and a write succeeds).
  - Measures the standby's replay lag first (see M(ops.runbooks.pg_replication_info) for how) against the
    primary when O(primary) is reachable, otherwise on the standby alone (received against replayed WAL; the
    result says so in a warning and in RV(lag.source)). When the lag exceeds O(max_lag_bytes) or
    O(max_lag_seconds) the module fails without changing anything, in check mode too, unless O(force=true).
  - The lag is measured to the replayed position, which is conservative. WAL the standby received but did not
    replay yet is replayed during promotion, so the actual loss can be smaller, but promotion takes longer.
  - With O(fence_primary=true) and the old primary reachable, fences it first, waits until the standby has
    received every WAL record the old primary wrote (a planned switchover then loses nothing; when this does
    not happen within O(wait_timeout), the module warns and promotes anyway, as the lag check allowed), then
    promotes. When the promotion does not happen, the fence is lifted again.
  - On O(platform=self_managed) the fence is C(ALTER SYSTEM SET default_transaction_read_only = on), a
    configuration reload, and the termination of every client session. The setting is not replicated, so the
    new primary does not inherit it. PostgreSQL cannot be shut down over SQL, so this is a soft fence, a client
    that sets C(default_transaction_read_only = off) itself can still write. Stop the old server, or cut it
    off, when that matters. Promotion is C(pg_promote()).
  - When the old primary is unreachable, it is not fenced and the module warns; make sure it stays down.
  - A server that is already a primary is left alone (C(changed=false), with a note in RV(notes)).
extends_documentation_fragment:
  - ops.runbooks.postgres
  - ops.runbooks.postgres_rpo
  - ops.runbooks.platform
  - ops.runbooks.verify
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details: Measures the lag and refuses as it would for real, and returns the plan and the statements in RV(queries).
  diff_mode:
    support: full
options:
  force:
    description:
      - Promote even when the lag exceeds O(max_lag_bytes) or O(max_lag_seconds), accepting the data loss.
    type: bool
    default: false
  fence_primary:
    description:
      - Fence the old primary given in O(primary) before promoting, when it is reachable.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds each wait may take, for the fence to load, for the standby to catch up after fencing, and
        for the promoted server to accept writes.
    type: int
    default: 60
notes:
  - O(login_user) must be a superuser or have been granted C(EXECUTE) on C(pg_promote()); fencing needs a
    superuser (or C(ALTER SYSTEM) on C(default_transaction_read_only) and C(pg_signal_backend)) on the primary.
  - After a promotion the old primary is on an older timeline; rebuild it or use C(pg_rewind) before making
    it a standby of the new primary.
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Fail over to the replica when it lags at most 16 MB, fencing the old primary if it is still up
  ops.runbooks.pg_promote:
    login_host: db-replica.example.com
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    primary:
      login_host: db-primary.example.com
    fence_primary: true
    max_lag_bytes: 16MB
    max_lag_seconds: 1min
  register: promotion

- name: Promote whatever the lag, the primary is gone for good
  ops.runbooks.pg_promote:
    login_host: db-replica.example.com
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    max_lag_bytes: 0
    force: true
"""

RETURN = r"""
verification:
  description: Result of the O(verify) probes after the change (per-probe details); absent when nothing was probed.
  returned: when O(verify) is set and something changed
  type: dict
promoted:
  description: Whether the standby was promoted (in check mode, whether it would be).
  returned: always
  type: bool
role_before:
  description: Role of the server before the run, V(standby) or V(primary).
  returned: always
  type: str
timeline_before:
  description: Timeline of the server before the run.
  returned: always
  type: int
  sample: 1
timeline:
  description: Timeline after the run (the new one after a promotion); null in check mode when it would change.
  returned: always
  type: int
  sample: 2
lag:
  description: The lag measured before promoting; null when the server was already a primary.
  returned: always
  type: dict
  contains:
    bytes: {description: Bytes of WAL not replayed; null when unknown., type: int}
    seconds:
      description: V(0) when caught up, else the age of the last replayed commit; null when unknown.
      type: float
    source:
      description: V(primary) when measured against the primary, V(standby) when against the WAL the standby received.
      type: str
    reference_lsn: {description: The position the lag is measured against., type: str}
    caught_up: {description: Whether everything up to C(reference_lsn) was replayed., type: bool}
  sample: {bytes: 4404019, seconds: 12.5, source: primary, reference_lsn: 0/5A0C2D8, caught_up: false}
receiver:
  description:
    - The standby's WAL receiver before promoting, as M(ops.runbooks.pg_replication_info) reports it (received and
      replayed positions, whether replay is paused, and C(upstream) with the C(status), for example V(streaming),
      and the server it streams from); null when the server was already a primary.
  returned: always
  type: dict
  sample:
    receive_lsn: 0/5A0C2D8
    replay_lsn: 0/5A0C2D8
    replay_paused: false
    upstream: {status: streaming, sender_host: db-primary.example.com, sender_port: 5432, slot_name: replica_1}
rpo_violations:
  description: The limits the lag exceeded (only non-empty when O(force=true) let the promotion go ahead).
  returned: always
  type: list
  elements: str
primary_reachable:
  description: Whether O(primary) could be used; null when not given or not needed.
  returned: always
  type: bool
fenced:
  description: What fencing did (null when nothing was fenced, including in check mode).
  returned: always
  type: dict
  sample:
    primary: 10.0.0.7:5432
    method: default_transaction_read_only
    sessions_terminated: 12
    final_lsn: 0/5A0C2D8
    standby_caught_up: true
promotion:
  description: What the backend did to promote (null when nothing was promoted).
  returned: always
  type: dict
  sample: {method: pg_promote, promote_returned: true}
wait_seconds:
  description: Seconds waited after promoting until the server accepted writes.
  returned: always
  type: float
queries:
  description: SQL statements run (or, in check mode, that would run) on the old primary, then on the standby.
  returned: always
  type: list
  elements: str
  sample:
    - ALTER SYSTEM SET default_transaction_read_only = on
    - SELECT pg_reload_conf()
    - SELECT pg_promote(true, 60) AS promoted
notes:
  description: Remarks, such as the server already being a primary.
  returned: always
  type: list
  elements: str
plan:
  description: Human-readable list of the steps taken (or, in check mode, that would be taken).
  returned: always
  type: list
  elements: str
  sample:
    - "fence primary 10.0.0.7:5432: new transactions read-only, end client sessions"
    - wait until standby 10.0.0.8:5432 has received all WAL of 10.0.0.7:5432
    - promote standby 10.0.0.8:5432 (self_managed)
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_promote import PgPromote


def main():
    run_procedure(PgPromote)


if __name__ == "__main__":
    main()
