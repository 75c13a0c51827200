# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Servers the runbook's own hosts run (VMs, containers, pods): everything is done over SQL."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend, writes


class SelfManagedBackend(Backend):
    platform = "self_managed"

    @writes
    def promote_standby(self, standby, timeout):
        # pg_promote(wait => true) itself waits at most wait_seconds for the end of recovery.
        wait_seconds = max(1, int(timeout))
        promoted = standby.scalar("SELECT pg_promote(true, %s)", (wait_seconds,))
        return {"method": "pg_promote", "promote_returned": bool(promoted)}

    @writes
    def fence_primary(self, primary):
        # Read-only by default for every new transaction, then end the sessions that could still write.
        primary.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        primary.scalar("SELECT pg_reload_conf()")
        ended = primary.query(
            "SELECT pid, pg_terminate_backend(pid) AS terminated FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        terminated = sum(1 for row in ended if row["terminated"])
        return {"method": "default_transaction_read_only", "sessions_terminated": terminated}
