"""pg_replication_info against the shared lab (read-only) and a disposable pair (for a known idle primary)."""

from __future__ import annotations

import re
import time

import pytest

from tests.helpers.ansible import run_playbook
from tests.helpers.fixtures import connect, server_params, wait_replica

pytestmark = pytest.mark.integration

LSN = re.compile(r"^[0-9A-F]+/[0-9A-F]+$")
IDLE_PAIR_PORT = 56000
DEAD_PORT = 56099  # nothing listens here: a module that tried to connect would say "cannot connect"


def test_info_on_shared_primary_and_standby(lab, pg_conn_params, replica_conn_params):
    primary_opt = {"login_host": lab.primary.host, "login_port": lab.primary.port}
    run = run_playbook([
        {"ops.runbooks.pg_replication_info": pg_conn_params},
        {"ops.runbooks.pg_replication_info": dict(replica_conn_params, primary=primary_opt)},
        {"ops.runbooks.pg_replication_info": replica_conn_params, "check_mode": True},
    ])
    primary, standby, standby_check = run.results
    assert not primary.failed and not primary.changed, primary
    assert primary["role"] == "primary" and primary["timeline"] >= 1
    assert primary["receiver"] is None and primary["lag"] is None
    [feed] = [s for s in primary["standbys"] if s["application_name"] == "lab_replica"]
    assert feed["state"] == "streaming" and feed["client_addr"] == lab.primary.host
    assert all(LSN.match(feed[k]) for k in ("sent_lsn", "write_lsn", "flush_lsn", "replay_lsn"))
    assert feed["lag_bytes"] >= 0
    [slot] = [s for s in primary["slots"] if s["name"] == "lab_replica"]
    assert slot["active"] and slot["type"] == "physical" and slot["retained_bytes"] >= 0

    for res in (standby, standby_check):
        assert not res.failed and not res.changed, res
        assert res["role"] == "standby" and res["timeline"] == primary["timeline"]
        assert res["standbys"] == []
        assert res["receiver"]["upstream"] == {"status": "streaming", "sender_host": lab.primary.host,
                                               "sender_port": lab.primary.port, "slot_name": "lab_replica"}
        assert LSN.match(res["receiver"]["receive_lsn"]) and LSN.match(res["receiver"]["replay_lsn"])
        assert res["rpo_met"] and res["rpo_violations"] == []  # no limits given
    assert standby["lag"]["source"] == "primary" and standby["primary_reachable"] is True
    assert standby_check["lag"]["source"] == "standby" and standby_check["primary_reachable"] is None
    with connect(lab, port=lab.replica.port) as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0]


def test_lag_stays_zero_while_primary_is_idle(pg_pair):
    pair = pg_pair(IDLE_PAIR_PORT)
    with connect(pair) as c:
        c.execute("CREATE TABLE t (id int)")
        c.execute("INSERT INTO t VALUES (1)")
    wait_replica(pair)
    idle = 3
    time.sleep(idle)  # no writes: the naive lag (age of the last replayed commit) keeps growing meanwhile
    standby = server_params(pair, pair.replica)
    limits = {"max_lag_bytes": 0, "max_lag_seconds": "0s"}
    run = run_playbook([
        {"ops.runbooks.pg_replication_info": dict(standby, **limits)},
        {"ops.runbooks.pg_replication_info": dict(standby, primary={"login_host": pair.primary.host,
                                                                     "login_port": pair.primary.port}, **limits)},
        {"ops.runbooks.pg_replication_info": dict(server_params(pair, pair.primary), **limits)},
    ])
    alone, against_primary, primary = run.results
    for res, source in ((alone, "standby"), (against_primary, "primary")):
        assert not res.failed, res
        assert res["receiver"]["last_replay_age_seconds"] >= idle
        assert res["lag"]["source"] == source
        assert res["lag"]["bytes"] == 0 and res["lag"]["seconds"] == 0 and res["lag"]["caught_up"], res["lag"]
        assert res["rpo_met"] and res["rpo_violations"] == [], res
    [feed] = primary["standbys"]
    assert feed["lag_bytes"] == 0 and feed["lag_seconds"] == 0
    assert primary["rpo_met"], primary


def test_bad_input(replica_conn_params):
    dead = dict(replica_conn_params, login_port=DEAD_PORT)
    bad = [
        (dict(dead, max_lag_bytes=-1), "max_lag_bytes"),
        (dict(dead, max_lag_bytes="1 parsec"), "max_lag_bytes"),
        (dict(dead, max_lag_bytes="1MB; DROP TABLE t"), "max_lag_bytes"),
        (dict(dead, max_lag_bytes=[1]), "max_lag_bytes"),
        (dict(dead, max_lag_seconds="soon"), "max_lag_seconds"),
        (dict(dead, max_lag_seconds=-5), "max_lag_seconds"),
        # ansible-core converts dict options with no_log suboptions before it validates them, and its message
        # does not name the option; it still fails before anything connects.
        (dict(dead, primary="db-primary"), "dictionary requested"),
        (dict(dead, primary={"login_port": 5432}), "login_host"),
        (dict(dead, primary={"login_host": "x", "login_port": "five"}), "login_port"),
        (dict(dead, primary={"login_host": "x", "password": "s3cret-typo"}), "password"),
    ]
    run = run_playbook([{"ops.runbooks.pg_replication_info": args} for args, _ in bad])
    for (args, needle), res in zip(bad, run.results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"], (needle, res["msg"])
        assert "cannot connect" not in res["msg"], res["msg"]
    assert replica_conn_params["login_password"] not in run.stdout
