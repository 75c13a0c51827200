#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_replication_info
short_description: Report PostgreSQL streaming replication state, lag and whether an RPO is met
version_added: 0.1.0
description:
  - Connects to one server and reports its role (primary or standby) and timeline.
  - On a primary, lists the connected standbys from C(pg_stat_replication) with their positions and lag, and
    the replication slots with the WAL they retain.
  - On a standby, reports the received and replayed WAL positions, the upstream it streams from
    (C(pg_stat_wal_receiver)) and its lag.
  - The lag of a standby is measured against the current WAL position of the primary when O(primary) is given
    and reachable, otherwise against the WAL the standby has received (which cannot see WAL the primary wrote
    but did not send, for example during a network partition).
  - Lag in seconds is V(0) when the standby has replayed everything up to that position, so it stays accurate
    while the primary is idle (the usual C(now() - pg_last_xact_replay_timestamp()) grows for ever then).
    When the standby is behind, it is the age of the last replayed commit, an upper bound of the window of
    commits the standby may be missing.
  - With O(max_lag_bytes) or O(max_lag_seconds), tells whether the recovery point objective is met. On a
    primary every connected standby must meet it, and a primary without standbys does not.
  - Never changes anything.
extends_documentation_fragment:
  - ops.runbooks.postgres
  - ops.runbooks.postgres_rpo
  - ops.runbooks.attributes.INFO_MODULE
notes:
  - O(primary) is ignored, with a note, when the connected server is itself a primary.
  - O(login_user) needs the C(pg_monitor) role (or superuser) to see other sessions' replication details.
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Check that the replica lags less than 16 MB and 30 seconds behind the primary
  ops.runbooks.pg_replication_info:
    login_host: db-replica.example.com
    login_user: monitor
    login_password: "{{ vault_pg_password }}"
    primary:
      login_host: db-primary.example.com
    max_lag_bytes: 16MB
    max_lag_seconds: 30
  register: replication

- name: Fail when the RPO is not met
  ansible.builtin.assert:
    that: replication.rpo_met
    fail_msg: "{{ replication.rpo_violations | join('; ') }}"

- name: List the standbys of the primary
  ops.runbooks.pg_replication_info:
    login_host: db-primary.example.com
  register: primary_state
"""

RETURN = r"""
role:
  description: V(primary) or V(standby).
  returned: always
  type: str
  sample: standby
timeline:
  description: The timeline the primary writes on, or the one the standby receives.
  returned: always
  type: int
  sample: 1
standbys:
  description:
    - Connected standbys (primary only, empty on a standby). Positions are LSNs as text.
    - O(max_lag_bytes) is compared with C(lag_bytes), O(max_lag_seconds) with C(lag_seconds).
  returned: always
  type: list
  elements: dict
  contains:
    application_name: {description: The standby's C(application_name)., type: str}
    client_addr: {description: Address the standby connects from., type: str}
    state:
      description: Walsender state, such as V(streaming) or V(catchup).
      type: str
    sync_state:
      description: V(async), V(sync), V(potential) or V(quorum).
      type: str
    sent_lsn: {description: Last WAL position sent., type: str}
    write_lsn: {description: Last WAL position written by the standby., type: str}
    flush_lsn: {description: Last WAL position flushed by the standby., type: str}
    replay_lsn: {description: Last WAL position replayed by the standby., type: str}
    lag_bytes: {description: Bytes of WAL between the primary's current position and C(replay_lsn)., type: int}
    write_lag_seconds:
      description: C(write_lag) in seconds (null once the standby is idle and caught up).
      type: float
    flush_lag_seconds:
      description: C(flush_lag) in seconds (null once the standby is idle and caught up).
      type: float
    replay_lag_seconds:
      description: C(replay_lag) in seconds (null once the standby is idle and caught up).
      type: float
    lag_seconds:
      description: V(0) when C(lag_bytes) is 0, else C(replay_lag_seconds).
      type: float
  sample:
    - application_name: replica1
      client_addr: 10.0.0.8
      state: streaming
      sync_state: async
      sent_lsn: 0/3494568
      write_lsn: 0/3494568
      flush_lsn: 0/3494568
      replay_lsn: 0/3494568
      lag_bytes: 0
      write_lag_seconds: null
      flush_lag_seconds: null
      replay_lag_seconds: null
      lag_seconds: 0.0
slots:
  description: Replication slots on the server.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Slot name., type: str}
    type: {description: V(physical) or V(logical)., type: str}
    active: {description: Whether a consumer is connected., type: bool}
    restart_lsn: {description: Oldest WAL position the slot needs., type: str}
    wal_status:
      description: V(reserved), V(extended), V(unreserved) or V(lost).
      type: str
    retained_bytes: {description: Bytes of WAL kept for the slot., type: int}
  sample:
    - {name: replica1, type: physical, active: true, restart_lsn: 0/3494568, wal_status: reserved, retained_bytes: 0}
receiver:
  description: WAL receiver state (standby only, null on a primary).
  returned: always
  type: dict
  contains:
    receive_lsn: {description: Last WAL position received and flushed., type: str}
    replay_lsn: {description: Last WAL position replayed., type: str}
    replay_paused: {description: Whether replay is paused (C(pg_wal_replay_pause())), type: bool}
    last_replay_timestamp: {description: Commit time of the last replayed transaction., type: str}
    last_replay_age_seconds:
      description: Age of the last replayed commit; this grows while the primary is idle, so it is not the lag.
      type: float
    upstream:
      description: C(status), C(sender_host), C(sender_port) and C(slot_name) from C(pg_stat_wal_receiver), null
        values when no WAL receiver runs.
      type: dict
  sample:
    receive_lsn: 0/3494568
    replay_lsn: 0/3494568
    replay_paused: false
    last_replay_timestamp: "2026-01-05 10:00:00.123+00"
    last_replay_age_seconds: 812.4
    upstream: {status: streaming, sender_host: 10.0.0.7, sender_port: 5432, slot_name: replica1}
lag:
  description: Lag of the standby (standby only, null on a primary).
  returned: always
  type: dict
  contains:
    bytes: {description: Bytes of WAL between C(reference_lsn) and the replayed position; null when unknown., type: int}
    seconds:
      description: V(0) when caught up, else the age of the last replayed commit; null when unknown.
      type: float
    source:
      description: V(primary) when measured against the primary, V(standby) when against received WAL.
      type: str
    reference_lsn: {description: The position the lag is measured against., type: str}
    caught_up: {description: Whether everything up to C(reference_lsn) is replayed., type: bool}
  sample: {bytes: 0, seconds: 0.0, source: primary, reference_lsn: 0/3494568, caught_up: true}
primary_reachable:
  description: Whether O(primary) could be used; null when not given or not needed.
  returned: always
  type: bool
rpo_met:
  description: Whether the lag is within O(max_lag_bytes) and O(max_lag_seconds); true when neither is given.
  returned: always
  type: bool
rpo_violations:
  description: Why the RPO is not met, one sentence per limit exceeded; unknown lag counts as exceeded.
  returned: always
  type: list
  elements: str
  sample: ["replay lag 4.2 MB exceeds max_lag_bytes 1 MB"]
notes:
  description: Remarks on how the result was obtained.
  returned: always
  type: list
  elements: str
plan:
  description: Always empty; this module changes nothing.
  returned: always
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_replication_info import PgReplicationInfo


def main():
    run_procedure(PgReplicationInfo)


if __name__ == "__main__":
    main()
