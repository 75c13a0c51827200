# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Promote a PostgreSQL standby, refusing when its lag breaks the RPO, optionally fencing the old primary first.

Order when the old primary is reachable and ``fence_primary`` is set: fence it, wait until the standby has
received every WAL record it wrote (so a planned switchover loses nothing), promote, wait until writable. When
the promotion does not happen, the fence is lifted again so the old primary keeps serving.
"""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import REQUIREMENT, PostgresClient
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    platform_argspec,
    postgres_connection_argspec,
    postgres_rpo_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_replication_info import (
    PRIMARY_LSN_QUERY,
    ROLE_QUERY,
    connect_primary,
    endpoint,
    lag_limits,
    lsn_position,
    measure_standby,
    rpo_violations,
)

# A temporary table is refused both during recovery and in a read-only transaction, and creating it commits
# catalog changes, so success proves the server writes WAL for clients.
_WRITE_PROBE = "CREATE TEMPORARY TABLE ops_runbooks_write_probe (id int) ON COMMIT DROP"
_RECEIVED = "SELECT pg_last_wal_receive_lsn()::text"


class PgPromote(Procedure):
    requirements = (REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                force=dict(type="bool", default=False),
                fence_primary=dict(type="bool", default=False),
                wait_timeout=dict(type="int", default=60),
            ),
            required_if=[("fence_primary", True, ["primary"])],
        )
        spec.merge(postgres_connection_argspec()).merge(postgres_rpo_argspec())
        return spec.merge(platform_argspec()).merge(verify_argspec())

    def validate(self):
        p = self.params
        self.max_bytes, self.max_seconds = lag_limits(p)
        validate.positive(p["wait_timeout"], "wait_timeout")
        self.backend = select_backend(p["platform"], p["platform_settings"], self.check_mode)
        self.standby = self.own(PostgresClient(p))
        self.label = endpoint(self.standby)
        self.primary = self.lag = self.receiver = self.fenced = self.promotion = self.wait_seconds = None
        self.primary_reachable = None
        self.violations, self.notes, self.queries = [], [], []

    def observe(self):
        role = self.standby.query(ROLE_QUERY)[0]
        return {"role": "standby" if role["in_recovery"] else "primary", "timeline": role["timeline"]}

    def plan(self, before):
        if before["role"] == "primary":
            self.notes.append(f"{self.label} is already a primary (timeline {before['timeline']}); nothing to do")
            return []
        p = self.params
        if p["primary"]:
            self.primary = connect_primary(self)
            self.primary_reachable = self.primary is not None
        self.receiver, self.lag = measure_standby(self.standby, self.primary)
        self.violations = rpo_violations(self.lag["bytes"], self.lag["seconds"], self.max_bytes, self.max_seconds)
        if self.violations and not p["force"]:
            raise RunbookError(f"promote {self.label} refused: {'; '.join(self.violations)}; set force=true to "
                               "accept data loss", lag=self.lag, rpo_violations=self.violations)
        if self.violations:
            self.warnings.append(f"promoting {self.label} despite {'; '.join(self.violations)} (force=true)")
        steps = []
        if p["fence_primary"] and self.primary is not None:
            old = endpoint(self.primary)
            steps += [
                Step(f"fence primary {old}: new transactions read-only, end client sessions", self.fence, fence=True),
                Step(f"wait until standby {self.label} has received all WAL of {old}", self.catch_up),
            ]
            self.queries += self.backend.fence_plan(self.primary)
        elif p["fence_primary"]:
            self.warnings.append("the old primary was not fenced because it cannot be used; make sure it stays "
                                 "down or two primaries will accept writes")
        steps.append(Step(f"promote standby {self.label} ({self.backend.platform})", self.promote))
        self.queries += self.backend.promote_plan(self.standby, p["wait_timeout"])
        return steps

    # -- steps -------------------------------------------------------------------------------------
    def fence(self):
        self.fenced = dict(self.backend.fence_primary(self.primary, self.params["wait_timeout"]),
                           primary=endpoint(self.primary))
        return self.fenced

    def catch_up(self):
        # Best effort: the lag check already bounded what may be lost, so a standby that does not catch up
        # is promoted anyway, with a warning.
        final = self.primary.scalar(PRIMARY_LSN_QUERY)
        self.fenced.update(final_lsn=final, standby_caught_up=False)

        def received():
            lsn = self.standby.scalar(_RECEIVED)
            return lsn is not None and lsn_position(lsn) >= lsn_position(final)
        try:
            wait_until(received, self.params["wait_timeout"], 0.1, what=f"{self.label} to receive WAL up to {final}")
        except RunbookError as exc:
            self.warnings.append(f"{exc.msg}; promoting anyway")
            return False
        self.fenced["standby_caught_up"] = True
        return True

    def promote(self):
        self.promotion = self.backend.promote_standby(self.standby, self.params["wait_timeout"])
        return self.promotion

    def writable(self):
        if self.standby.in_recovery():
            return False
        self.standby.query(_WRITE_PROBE)
        return True

    # -- proof and rollback ------------------------------------------------------------------------
    def verify(self, before, applied):
        _ok, self.wait_seconds = wait_until(self.writable, self.params["wait_timeout"], 0.2,
                                            what=f"{self.label} to accept writes after promotion")

    def rollback(self, before, applied, error):
        if not any(s.details.get("fence") for s in applied):
            return []
        try:
            promoted = not self.standby.in_recovery()
        except RunbookError:
            promoted = None
        if promoted is not False:
            # Promoted, or cannot tell: lifting the fence could leave two writable primaries.
            return []
        old = endpoint(self.primary)
        try:
            self.backend.unfence_primary(self.primary)
        except RunbookError as exc:
            return [f"could not lift the fence on {old} ({exc.msg}); lift it by hand if it should keep serving"]
        return [f"lifted the fence on {old}: {self.label} was not promoted"]

    def project(self, before, steps):
        return {"role": "primary", "timeline": None}

    def report(self, before, after, steps):
        if not self.check_mode:
            self.queries = (self.primary.executed if self.primary else []) + self.standby.executed
        return {
            "promoted": bool(steps),
            "role_before": before["role"],
            "timeline_before": before["timeline"],
            "timeline": after["timeline"],
            "lag": self.lag,
            "receiver": self.receiver,
            "rpo_violations": self.violations,
            "primary_reachable": self.primary_reachable,
            "fenced": self.fenced,
            "promotion": self.promotion,
            "wait_seconds": self.wait_seconds,
            "queries": self.queries,
            "notes": self.notes,
        }
