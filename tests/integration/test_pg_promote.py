"""pg_promote against disposable primary/standby pairs (ports 56002-56099); the shared lab is never promoted."""

from __future__ import annotations

import psycopg
import pytest

from tests.helpers.ansible import four_steps, run_module, run_playbook
from tests.helpers.fixtures import connect, server_params, wait_replica

pytestmark = pytest.mark.integration

LAG_PAIR_PORT = 56002
FENCE_PAIR_PORT = 56004
ROLLBACK_PAIR_PORT = 56006
DEAD_PORT = 56099  # nothing listens here: a module that tried to connect would say "cannot connect"


def _standby_state(pair):
    with connect(pair, port=pair.replica.port) as c:
        in_recovery, timeline = c.execute(
            "SELECT pg_is_in_recovery(), (SELECT timeline_id FROM pg_control_checkpoint())").fetchone()
    return {"in_recovery": in_recovery, "timeline": timeline}


def _primary_option(pair):
    return {"login_host": pair.primary.host, "login_port": pair.primary.port}


def test_lag_refusal_then_force_with_primary_down(pg_pair):
    pair = pg_pair(LAG_PAIR_PORT)
    with connect(pair) as c:
        c.execute("CREATE TABLE seen (id int)")
        c.execute("INSERT INTO seen VALUES (1)")
    wait_replica(pair)  # a replayed commit, so the standby knows how old its data is
    with connect(pair, port=pair.replica.port) as c:
        c.execute("SELECT pg_wal_replay_pause()")
    with connect(pair) as c:
        c.execute("CREATE TABLE backlog AS SELECT g AS id, repeat('x', 500) AS pad FROM generate_series(1, 10000) g")
    wait_replica(pair, "receive")  # received but not replayed: lag on the standby's own view too
    before = _standby_state(pair)
    standby = server_params(pair, pair.replica)
    guarded = dict(standby, primary=_primary_option(pair), max_lag_bytes="1MB")
    run = run_playbook([
        {"ops.runbooks.pg_replication_info": guarded},
        {"ops.runbooks.pg_replication_info": dict(standby, max_lag_bytes=1048576, max_lag_seconds=3600)},
        {"ops.runbooks.pg_promote": guarded, "check_mode": True},
        {"ops.runbooks.pg_promote": guarded},
        {"ops.runbooks.pg_promote": dict(standby, max_lag_seconds=0)},
    ])
    info, info_alone, refused_check, refused, refused_seconds = run.results
    assert info["receiver"]["replay_paused"] and info["lag"]["source"] == "primary"
    assert info["lag"]["bytes"] > 1048576 and info["lag"]["seconds"] > 0 and not info["lag"]["caught_up"]
    assert not info["rpo_met"] and "exceeds max_lag_bytes 1 MB" in info["rpo_violations"][0], info
    assert info_alone["lag"]["source"] == "standby" and info_alone["lag"]["bytes"] > 1048576
    assert not info_alone["rpo_met"] and len(info_alone["rpo_violations"]) == 1, info_alone  # seconds within
    for res in (refused_check, refused):
        assert res.failed, res
        assert res["msg"].startswith(f"promote 127.0.0.1:{pair.replica.port} refused: replay lag "), res["msg"]
        assert res["msg"].endswith("exceeds max_lag_bytes 1 MB; set force=true to accept data loss"), res["msg"]
        assert res["lag"]["bytes"] > 1048576
    assert refused_seconds.failed and "exceeds max_lag_seconds 0 s" in refused_seconds["msg"], refused_seconds
    assert _standby_state(pair) == before == {"in_recovery": True, "timeline": 1}

    # The primary dies: the lag can only be measured on the standby, and force accepts the loss.
    pair.primary.stop()
    res = run_module("pg_promote", dict(guarded, force=True, fence_primary=True, wait_timeout=30))
    assert not res.failed and res.changed and res["promoted"], res
    assert res["primary_reachable"] is False and res["lag"]["source"] == "standby" and res["fenced"] is None
    assert res["rpo_violations"] and res["lag"]["bytes"] > 1048576
    warnings = " ".join(res["warnings"])
    assert "is unreachable" in warnings and "force=true" in warnings and "not fenced" in warnings
    assert res["timeline"] == res["timeline_before"] + 1
    with connect(pair, port=pair.replica.port) as c:
        c.execute("INSERT INTO seen VALUES (2)")
        assert not c.execute("SELECT pg_is_in_recovery()").fetchone()[0]


def test_promote_with_fencing_four_steps(pg_pair):
    pair = pg_pair(FENCE_PAIR_PORT)
    with connect(pair) as c:
        c.execute("CREATE TABLE orders (id int)")
        c.execute("INSERT INTO orders VALUES (1)")
    wait_replica(pair)
    app_session = connect(pair)  # a client of the old primary, to be cut off by the fence
    args = dict(server_params(pair, pair.replica), primary=_primary_option(pair), fence_primary=True,
                max_lag_bytes="1MB", max_lag_seconds="1min", wait_timeout=30)

    def snapshot():
        with connect(pair) as c:
            read_only = c.execute("SHOW default_transaction_read_only").fetchone()[0]
        return dict(_standby_state(pair), primary_read_only=read_only,
                    app_session_alive=app_session.execute("SELECT 1").fetchone()[0] == 1)

    before = snapshot()
    check = run_module("pg_promote", args, check=True, diff=True)
    assert snapshot() == before == {"in_recovery": True, "timeline": 1, "primary_read_only": "off",
                                    "app_session_alive": True}
    assert check.changed and check["promoted"] and check["fenced"] is None and check["timeline"] is None, check
    assert check["diff"] == {"before": {"role": "standby", "timeline": 1},
                             "after": {"role": "primary", "timeline": None}}
    assert [s.split(" ")[0] for s in check["plan"]] == ["fence", "wait", "promote"], check["plan"]
    assert check["queries"][0] == "ALTER SYSTEM SET default_transaction_read_only = on"
    assert check["queries"][-1] == "SELECT pg_promote(true, 30) AS promoted"

    check1, apply1, check2, apply2 = four_steps("pg_promote", args)
    assert check1.changed and check1["plan"] == check["plan"], check1
    assert not apply1.failed and apply1.changed and apply1["promoted"], apply1
    assert apply1["queries"] == check["queries"]
    assert apply1["timeline"] == 2 and apply1["lag"]["source"] == "primary" and apply1["lag"]["caught_up"]
    assert apply1["fenced"]["primary"] == f"127.0.0.1:{pair.primary.port}"
    assert apply1["fenced"]["standby_caught_up"] and apply1["fenced"]["sessions_terminated"] >= 1
    assert apply1["wait_seconds"] is not None
    for res in (check2, apply2):
        assert not res.failed and not res.changed and not res["promoted"], res
        assert res["notes"] == [f"127.0.0.1:{pair.replica.port} is already a primary (timeline 2); nothing to do"]

    with connect(pair, port=pair.replica.port) as c:
        c.execute("INSERT INTO orders VALUES (2)")
    with pytest.raises(psycopg.OperationalError):
        app_session.execute("SELECT 1")
    with connect(pair) as c, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        c.execute("INSERT INTO orders VALUES (3)")


def test_failed_promotion_lifts_the_fence(pg_pair):
    pair = pg_pair(ROLLBACK_PAIR_PORT)
    with connect(pair) as c:
        # Can measure the standby but may not run pg_promote(): the promotion fails after the fence went up.
        c.execute("CREATE ROLE watcher LOGIN PASSWORD 'watcher-pw' IN ROLE pg_monitor")
        c.execute("CREATE TABLE orders (id int)")
    wait_replica(pair)
    args = dict(server_params(pair, pair.replica), login_user="watcher", login_password="watcher-pw",
                primary=dict(_primary_option(pair), login_user=pair.admin_user, login_password=pair.admin_password),
                fence_primary=True, wait_timeout=30)
    res = run_module("pg_promote", args)
    assert res.failed and "permission denied for function pg_promote" in res["msg"], res
    assert [s.split(" ")[0] for s in res["applied"]] == ["fence", "wait"], res
    assert res["rolled_back"] == [f"lifted the fence on 127.0.0.1:{pair.primary.port}: "
                                  f"127.0.0.1:{pair.replica.port} was not promoted"], res
    assert _standby_state(pair) == {"in_recovery": True, "timeline": 1}
    with connect(pair) as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
        c.execute("INSERT INTO orders VALUES (1)")


def test_bad_input(lab, replica_conn_params):
    dead = dict(replica_conn_params, login_port=DEAD_PORT)
    primary = {"login_host": "127.0.0.1", "login_port": DEAD_PORT, "login_password": "pr1mary-s3cret"}
    bad = [
        (dict(dead, primary=primary, max_lag_bytes=-1), "max_lag_bytes"),
        (dict(dead, max_lag_bytes="1 parsec"), "max_lag_bytes"),
        (dict(dead, max_lag_bytes="1MB; DROP TABLE orders"), "max_lag_bytes"),
        (dict(dead, max_lag_seconds="a while"), "max_lag_seconds"),
        (dict(dead, force="maybe"), "force"),
        (dict(dead, wait_timeout="soon"), "wait_timeout"),
        (dict(dead, wait_timeout=0), "wait_timeout"),
        (dict(dead, fence_primary=True), "primary"),
        (dict(dead, primary=dict(primary, login_port="fivefourthreetwo")), "login_port"),
        (dict(dead, platform="azure"), "platform"),
        (dict(dead, platform_settings="rg-1"), "platform_settings"),
    ]
    run = run_playbook([{"ops.runbooks.pg_promote": args} for args, _ in bad])
    for (args, needle), res in zip(bad, run.results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"], (needle, res["msg"])
        assert "cannot connect" not in res["msg"] and "unreachable" not in res["msg"], res["msg"]
    assert "pr1mary-s3cret" not in run.stdout and replica_conn_params["login_password"] not in run.stdout
    with connect(lab, port=lab.replica.port) as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
