# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication state of a PostgreSQL server and whether a recovery point objective (RPO) is met.

Also the shared measuring code of ``pg_promote``: the ``primary`` option, the standby lag and the RPO check.

Why lag is not ``now() - pg_last_xact_replay_timestamp()``: that is the age of the last replayed commit, so it
grows for ever while the primary is idle although nothing is missing. Here a standby that has replayed
everything up to a reference position (the primary's current WAL position when the primary is reachable,
otherwise what the standby has received) has a lag of 0 seconds; only a standby that is behind reports the age
of its last replayed commit, an upper bound of the window of commits it may be missing.
"""

from __future__ import annotations

import socket

from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import REQUIREMENT, PostgresClient
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    postgres_connection_argspec,
    postgres_rpo_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure

# pg_walfile_name() carries the timeline the primary writes on right now; pg_control_checkpoint() would only
# show it after the first checkpoint following a promotion. A standby reports the timeline it receives.
ROLE_QUERY = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery()
            THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
                          (SELECT timeline_id FROM pg_control_checkpoint()))
            ELSE ('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::int
       END AS timeline
"""
_STANDBYS = """
SELECT application_name, host(client_addr) AS client_addr, state, sync_state,
       sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
       greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn))::bigint AS lag_bytes,
       extract(epoch FROM write_lag)::float AS write_lag_seconds,
       extract(epoch FROM flush_lag)::float AS flush_lag_seconds,
       extract(epoch FROM replay_lag)::float AS replay_lag_seconds
  FROM pg_stat_replication
 ORDER BY application_name, pid
"""
_SLOTS = """
SELECT slot_name AS name, slot_type AS type, active, restart_lsn::text, wal_status,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
                       restart_lsn)::bigint AS retained_bytes
  FROM pg_replication_slots
 ORDER BY slot_name
"""
_RECEIVER = """
SELECT pg_last_wal_receive_lsn()::text AS receive_lsn, pg_last_wal_replay_lsn()::text AS replay_lsn,
       pg_get_wal_replay_pause_state() <> 'not paused' AS replay_paused,
       pg_last_xact_replay_timestamp()::text AS last_replay_timestamp,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float AS last_replay_age_seconds,
       r.status, r.sender_host, r.sender_port, r.slot_name
  FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true
"""
PRIMARY_LSN_QUERY = "SELECT pg_current_wal_lsn()::text"


def lag_limits(params):
    """``(max_lag_bytes, max_lag_seconds)`` parsed; raises ParameterError naming the option."""
    return (validate.size_bytes(params["max_lag_bytes"], "max_lag_bytes"),
            validate.duration_seconds(params["max_lag_seconds"], "max_lag_seconds"))


def endpoint(client):
    return f"{client.kwargs.get('host') or 'localhost'}:{client.kwargs['port']}"


def human_bytes(size):
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}".replace(".0 ", " ")


def lsn_position(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _listening(host, port, timeout):
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def connect_primary(procedure):
    """Connect to the server of the ``primary`` option; ``None``, with a warning, when it cannot be used.

    Connection options the ``primary`` dict leaves unset are taken from the top-level ones. A primary that
    cannot be reached is a normal failover situation; a primary that is up but refuses us (wrong password,
    missing grant) is a configuration error and fails, because carrying on would skip fencing a live server.
    """
    params = procedure.params
    overrides = {k: v for k, v in params["primary"].items() if v is not None}
    client = procedure.own(PostgresClient(dict(params, login_unix_socket="", **overrides)))
    label = endpoint(client)
    try:
        in_recovery = client.in_recovery()
    except RunbookError as exc:
        # libpq gives the same error class for "nobody listens" and "authentication failed"; a plain TCP
        # connect tells the two apart without parsing (possibly translated) server messages.
        if _listening(client.kwargs["host"], client.kwargs["port"], client.kwargs["connect_timeout"]):
            raise RunbookError(f"primary {label} is up but the connection failed: {exc.msg}; fix the primary "
                               "connection options") from None
        problem = f"primary {label} is unreachable ({exc.msg})"
    else:
        if not in_recovery:
            return client
        problem = f"primary {label} is in recovery, so it is not the primary"
    procedure.warnings.append(f"{problem}; lag measured as received-vs-replayed WAL on the standby, which cannot "
                              "see WAL the primary wrote but did not send")
    return None


def measure_standby(standby, primary=None):
    """Receiver state and lag of a standby, against ``primary`` when given (else against what it received)."""
    rx = standby.query(_RECEIVER)[0]
    reference = primary.scalar(PRIMARY_LSN_QUERY) if primary is not None else rx["receive_lsn"]
    lag_bytes = lag_seconds = None
    if reference is not None:
        lag_bytes = max(0, lsn_position(reference) - lsn_position(rx["replay_lsn"]))
        lag_seconds = 0.0 if lag_bytes == 0 else rx["last_replay_age_seconds"]
    receiver = {k: rx[k] for k in ("receive_lsn", "replay_lsn", "replay_paused", "last_replay_timestamp",
                                   "last_replay_age_seconds")}
    receiver["upstream"] = {k: rx[k] for k in ("status", "sender_host", "sender_port", "slot_name")}
    lag = {"bytes": lag_bytes, "seconds": lag_seconds, "source": "primary" if primary is not None else "standby",
           "reference_lsn": reference, "caught_up": lag_bytes == 0}
    return receiver, lag


def rpo_violations(lag_bytes, lag_seconds, max_bytes, max_seconds, subject="replay lag"):
    """Why the lag breaks the limits, as sentences; empty when it does not. Unknown lag breaks any limit."""
    found = []
    if max_bytes is not None:
        if lag_bytes is None:
            found.append(f"{subject} in bytes is unknown (the standby has not received any WAL)")
        elif lag_bytes > max_bytes:
            found.append(f"{subject} {human_bytes(lag_bytes)} exceeds max_lag_bytes {human_bytes(max_bytes)}")
    if max_seconds is not None:
        if lag_seconds is None:
            found.append(f"{subject} in seconds is unknown (no transaction replayed since the standby started)")
        elif lag_seconds > max_seconds:
            found.append(f"{subject} {lag_seconds:.1f} s exceeds max_lag_seconds {max_seconds:g} s")
    return found


class PgReplicationInfo(Procedure):
    requirements = (REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        return postgres_connection_argspec().merge(postgres_rpo_argspec())

    def validate(self):
        self.max_bytes, self.max_seconds = lag_limits(self.params)
        self.diff_mode = False  # nothing ever changes, so there is nothing to diff
        self.client = self.own(PostgresClient(self.params))
        self.notes = []

    def observe(self):
        role = self.client.query(ROLE_QUERY)[0]
        info = {"role": "standby" if role["in_recovery"] else "primary", "timeline": role["timeline"],
                "standbys": [], "slots": self.client.query(_SLOTS), "receiver": None, "lag": None,
                "primary_reachable": None}
        if role["in_recovery"]:
            primary = None
            if self.params["primary"]:
                primary = connect_primary(self)
                info["primary_reachable"] = primary is not None
            info["receiver"], info["lag"] = measure_standby(self.client, primary)
        else:
            if self.params["primary"]:
                self.notes.append(f"{endpoint(self.client)} is a primary; the primary option is ignored")
            for s in self.client.query(_STANDBYS):
                # replay_lag is NULL once a standby has replayed everything; a standby with nothing to replay
                # has no lag, whatever interval was last measured.
                s["lag_seconds"] = 0.0 if s["lag_bytes"] == 0 else s["replay_lag_seconds"]
                info["standbys"].append(s)
        return info

    def rpo(self, info):
        if info["role"] == "standby":
            return rpo_violations(info["lag"]["bytes"], info["lag"]["seconds"], self.max_bytes, self.max_seconds)
        if self.max_bytes is None and self.max_seconds is None:
            return []
        if not info["standbys"]:
            return ["no standby is connected"]
        return [v for s in info["standbys"] for v in rpo_violations(
            s["lag_bytes"], s["lag_seconds"], self.max_bytes, self.max_seconds,
            f"standby {s['application_name']} ({s['client_addr']}) replay lag")]

    def report(self, before, after, steps):
        violations = self.rpo(before)
        return dict(before, rpo_met=not violations, rpo_violations=violations, notes=self.notes)
