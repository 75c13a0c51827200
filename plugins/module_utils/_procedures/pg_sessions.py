# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cancel or terminate PostgreSQL sessions matched by state, idle time, user, application or database."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import REQUIREMENT, PostgresClient
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    postgres_connection_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step

STATES = ["active", "idle", "idle in transaction", "idle in transaction (aborted)", "fastpath function call",
          "disabled"]
QUERY_PREVIEW = 200

# Only ordinary client sessions are ever candidates: walsenders (replication), autovacuum and other
# background processes are excluded by backend_type, and the module's own session by pid.
_SELECT = """
SELECT pid, usename AS user, datname AS database, application_name, host(client_addr) AS client_addr, state,
       round(extract(epoch FROM now() - state_change)::numeric, 3)::float AS state_seconds,
       round(extract(epoch FROM now() - query_start)::numeric, 3)::float AS query_seconds,
       left(query, %(preview)s) AS query
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
   AND pid <> pg_backend_pid()
   AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))
   AND (%(idle_for)s::float IS NULL
        OR (state <> 'active' AND now() - state_change >= make_interval(secs => %(idle_for)s)))
   AND (%(min_query)s::float IS NULL
        OR (state = 'active' AND now() - query_start >= make_interval(secs => %(min_query)s)))
   AND (%(users)s::text[] IS NULL OR usename = ANY(%(users)s::text[]))
   AND (%(apps)s::text[] IS NULL OR application_name = ANY(%(apps)s::text[]))
   AND (%(dbs)s::text[] IS NULL OR datname = ANY(%(dbs)s::text[]))
 ORDER BY pid
"""
_CANCEL = "SELECT pg_cancel_backend(%s)"
_TERMINATE = "SELECT pg_terminate_backend(%s)"


class PgSessions(Procedure):
    requirements = (REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                action=dict(type="str", default="terminate", choices=["cancel", "terminate"]),
                state=dict(type="list", elements="str", choices=STATES),
                idle_for=dict(type="str"),
                min_query_duration=dict(type="str"),
                user=dict(type="list", elements="str"),
                application_name=dict(type="list", elements="str"),
                database=dict(type="list", elements="str"),
                wait_timeout=dict(type="int", default=15),
            ),
            required_one_of=[["state", "idle_for", "min_query_duration", "user", "application_name", "database"]],
        )
        return spec.merge(postgres_connection_argspec()).merge(verify_argspec())

    def validate(self):
        p = self.params
        self.idle_for = validate.duration_seconds(p["idle_for"], "idle_for")
        self.min_query = validate.duration_seconds(p["min_query_duration"], "min_query_duration")
        validate.positive(p["wait_timeout"], "wait_timeout")
        if self.idle_for is not None and p["state"] and "active" in p["state"]:
            raise RunbookError("idle_for matches only sessions that are not active; drop 'active' from state",
                               parameter="idle_for")
        self.client = self.own(PostgresClient(p))

    def matching(self):
        p = self.params
        return self.client.query(_SELECT, {
            "preview": QUERY_PREVIEW, "states": p["state"], "idle_for": self.idle_for,
            "min_query": self.min_query, "users": p["user"], "apps": p["application_name"],
            "dbs": p["database"],
        })

    def observe(self):
        return {"sessions": self.matching()}

    def plan(self, before):
        statement = _CANCEL if self.params["action"] == "cancel" else _TERMINATE
        return [
            Step(f"{self.params['action']} pid {s['pid']} ({s['user']}@{s['database']}, {s['state']})",
                 lambda pid=s["pid"]: self.client.scalar(statement, (pid,)), pid=s["pid"])
            for s in before["sessions"]
        ]

    def verify(self, before, applied):
        targets = {s.details["pid"] for s in applied}
        if self.params["action"] == "terminate":
            def gone():
                left = self.client.query("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (list(targets),))
                return not left
        else:
            # A cancelled session stays connected; it must no longer match (its query ended).
            def gone():
                return not targets & {s["pid"] for s in self.matching()}
        wait_until(gone, self.params["wait_timeout"], 0.1, what=f"sessions {sorted(targets)} to end")

    def project(self, before, steps):
        return {"sessions": []}

    def report(self, before, after, steps):
        pids = [s.details["pid"] for s in steps]
        return {
            "action": self.params["action"],
            "sessions": before["sessions"],
            "ended": pids if not self.check_mode else [],
            "would_end": pids if self.check_mode else [],
        }
