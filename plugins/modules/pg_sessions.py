#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_sessions
short_description: Cancel or terminate PostgreSQL sessions, such as idle-in-transaction ones
version_added: 0.1.0
description:
  - Finds client sessions in C(pg_stat_activity) matched by every given filter and cancels their query or
    terminates them, then waits until they are gone.
  - Never touches its own session, replication connections (walsenders) or background processes.
  - At least one filter is required, so a bare call cannot end every session.
  - In check mode, lists the sessions (pid, user, database, state and the first 200 characters of the query)
    that would be ended.
extends_documentation_fragment:
  - ops.runbooks.postgres
  - ops.runbooks.verify
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  action:
    description:
      - V(cancel) stops the running query (C(pg_cancel_backend)).
      - V(terminate) closes the session (C(pg_terminate_backend)).
    type: str
    default: terminate
    choices: [cancel, terminate]
  state:
    description:
      - Match sessions in any of these states.
    type: list
    elements: str
    choices: [active, idle, idle in transaction, idle in transaction (aborted), fastpath function call, disabled]
  idle_for:
    description:
      - Match sessions that are not active and have been in their state at least this long.
      - Seconds, or a number with a unit such as V(500ms), V(30s), V(5min), V(2h), V(1d).
    type: str
  min_query_duration:
    description:
      - Match active sessions whose current query has been running at least this long (same format as O(idle_for)).
    type: str
  user:
    description:
      - Match sessions of these roles.
    type: list
    elements: str
  application_name:
    description:
      - Match sessions with these C(application_name) values.
    type: list
    elements: str
  database:
    description:
      - Match sessions connected to these databases.
    type: list
    elements: str
  wait_timeout:
    description:
      - Seconds to wait for the ended sessions to disappear (terminate) or for their queries to stop (cancel).
    type: int
    default: 15
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: End sessions idle in a transaction for more than 10 minutes
  ops.runbooks.pg_sessions:
    login_host: db.example.com
    login_user: ops
    login_password: "{{ vault_pg_password }}"
    state: [idle in transaction]
    idle_for: 10min

- name: Cancel report queries running longer than 5 minutes
  ops.runbooks.pg_sessions:
    action: cancel
    application_name: [metabase]
    min_query_duration: 5min
"""

RETURN = r"""
verification:
  description: Result of the O(verify) probes after the change (per-probe details); absent when nothing was probed.
  returned: when O(verify) is set and something changed
  type: dict
action:
  description: The action taken or planned.
  returned: always
  type: str
  sample: terminate
sessions:
  description: The sessions that matched, as seen before any change.
  returned: always
  type: list
  elements: dict
  sample:
    - pid: 4242
      user: app
      database: shop
      application_name: api
      client_addr: 10.0.0.7
      state: idle in transaction
      state_seconds: 812.4
      query_seconds: 812.5
      query: UPDATE orders SET ...
ended:
  description: Pids that were cancelled or terminated (empty in check mode).
  returned: always
  type: list
  elements: int
would_end:
  description: Pids that would be cancelled or terminated (check mode only, otherwise empty).
  returned: always
  type: list
  elements: int
plan:
  description: Human-readable list of the actions, one per session.
  returned: always
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_sessions import PgSessions


def main():
    run_procedure(PgSessions)


if __name__ == "__main__":
    main()
