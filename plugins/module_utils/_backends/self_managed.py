# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Servers the runbook's own hosts run (VMs, containers, pods): everything is done over SQL."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend, writes
from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import sql
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until

# PostgreSQL has no SQL command that stops the server, and stopping it is a host-level action, so the fence
# is: every new transaction read-only by default, then end the client sessions that could still write.
# ALTER SYSTEM writes postgresql.auto.conf, which is not replicated, so the standby never inherits the fence.
# A client that explicitly sets default_transaction_read_only = off can still write: stop the server
# (or cut it off the network) when that matters.
_FENCE = (
    "ALTER SYSTEM SET default_transaction_read_only = on",
    "SELECT pg_reload_conf()",
    "SELECT pid, pg_terminate_backend(pid) AS terminated FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
)
_UNFENCE = ("ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")


def _promote_statement(timeout):
    # pg_promote(wait => true) itself waits at most wait_seconds for the end of recovery.
    return sql.SQL("SELECT pg_promote(true, {}) AS promoted").format(sql.Literal(max(1, int(timeout))))


class SelfManagedBackend(Backend):
    platform = "self_managed"

    def promote_plan(self, standby, timeout):
        return [standby.render(_promote_statement(timeout))]

    @writes
    def promote_standby(self, standby, timeout):
        promoted = standby.execute(_promote_statement(timeout))[0]["promoted"]
        return {"method": "pg_promote", "promote_returned": bool(promoted)}

    def fence_plan(self, primary):
        return list(_FENCE)

    @writes
    def fence_primary(self, primary, timeout=30):
        alter, reload, terminate = _FENCE
        primary.execute(alter)
        primary.execute(reload)
        # The postmaster re-reads the configuration before it signals the backends, so once this session sees
        # the new value, every session started from now on is read-only too: only then end the old ones.
        wait_until(lambda: primary.scalar("SHOW default_transaction_read_only") == "on", timeout, 0.05,
                   what=f"{primary.label} to load default_transaction_read_only = on")
        ended = primary.execute(terminate)
        return {"method": "default_transaction_read_only",
                "sessions_terminated": sum(1 for r in ended if r["terminated"])}

    @writes
    def unfence_primary(self, primary):
        for statement in _UNFENCE:
            primary.execute(statement)
        return list(_UNFENCE)
