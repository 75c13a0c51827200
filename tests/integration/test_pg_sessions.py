"""pg_sessions against the real lab primary."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from tests.helpers.ansible import four_steps, run_module, run_playbook
from tests.helpers.fixtures import connect

pytestmark = pytest.mark.integration


def _idle_in_tx(lab, app):
    conn = psycopg.connect(host=lab.primary.host, port=lab.primary.port, user=lab.admin_user,
                           password=lab.admin_password, dbname="postgres", application_name=app)
    conn.execute("SELECT 1")  # opens a transaction (autocommit off) and leaves it idle
    return conn


def _alive(lab, pids):
    with connect(lab) as c:
        return {r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))}


def test_four_steps_terminate_idle_in_transaction(lab, pg_conn_params):
    app = f"leaky-{uuid.uuid4().hex[:6]}"
    victims = [_idle_in_tx(lab, app) for _ in range(2)]
    bystander = _idle_in_tx(lab, app + "-other")
    pids = [c.info.backend_pid for c in victims]
    time.sleep(0.3)
    args = dict(pg_conn_params, state=["idle in transaction"], application_name=[app], idle_for="100ms")
    check1, apply1, check2, apply2 = four_steps("pg_sessions", args)

    assert not check1.failed, check1
    assert check1.changed and sorted(check1["would_end"]) == sorted(pids)
    assert all(s["query"] == "SELECT 1" for s in check1["sessions"])
    assert apply1.changed and sorted(apply1["ended"]) == sorted(pids), apply1
    assert not _alive(lab, pids)
    assert not check2.changed and check2["would_end"] == []
    assert not apply2.changed and apply2["ended"] == []
    assert _alive(lab, [bystander.info.backend_pid])
    bystander.close()


def test_check_mode_leaves_sessions_alone(lab, pg_conn_params):
    app = f"keep-{uuid.uuid4().hex[:6]}"
    conn = _idle_in_tx(lab, app)
    pid = conn.info.backend_pid
    res = run_module("pg_sessions", dict(pg_conn_params, application_name=[app]), check=True, diff=True)
    assert res.changed and res["would_end"] == [pid]
    assert res["diff"]["before"]["sessions"][0]["pid"] == pid and res["diff"]["after"]["sessions"] == []
    assert _alive(lab, [pid]) == {pid}
    conn.close()


def test_cancel_long_query(lab, pg_conn_params):
    import threading

    app = f"slow-{uuid.uuid4().hex[:6]}"
    errors = []

    def slow():
        with psycopg.connect(host=lab.primary.host, port=lab.primary.port, user=lab.admin_user,
                             password=lab.admin_password, dbname="postgres", application_name=app,
                             autocommit=True) as c:
            try:
                c.execute("SELECT pg_sleep(60)")
            except psycopg.errors.QueryCanceled as exc:
                errors.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(1.0)
    res = run_module("pg_sessions", dict(pg_conn_params, action="cancel", application_name=[app],
                                         min_query_duration="200ms"))
    t.join(timeout=30)
    assert res.changed and len(res["ended"]) == 1, res
    assert errors, "the query was not cancelled"


def test_never_ends_replication_sessions(lab, pg_conn_params):
    # The walsender feeding the replica runs as replicator with application_name lab_replica: it matches
    # the filters but is not a client backend, so it is never a candidate.
    res = run_module("pg_sessions", dict(pg_conn_params, user=["replicator"], application_name=["lab_replica"]),
                     check=True)
    assert not res.failed, res
    assert res["would_end"] == []
    with connect(lab) as c:
        assert c.execute("SELECT count(*) FROM pg_stat_replication WHERE state='streaming'").fetchone()[0] == 1


def test_never_ends_its_own_session(pg_conn_params, scratch_db):
    # Only the module's own connection is in this fresh database with this application name.
    res = run_module("pg_sessions", dict(pg_conn_params, db=scratch_db, database=[scratch_db],
                                         application_name=["ops.runbooks"]))
    assert not res.failed, res
    assert not res.changed and res["ended"] == [] and res["sessions"] == []


def test_bad_input(pg_conn_params):
    bad = [
        (dict(pg_conn_params), "one of the following is required"),
        (dict(pg_conn_params, action="kill", state=["idle"]), "action"),
        (dict(pg_conn_params, state=["sleeping"]), "state"),
        (dict(pg_conn_params, idle_for="ten minutes"), "idle_for"),
        (dict(pg_conn_params, min_query_duration="-5"), "min_query_duration"),
        (dict(pg_conn_params, state=["active"], idle_for="5min"), "idle_for"),
        (dict(pg_conn_params, user=["x"], wait_timeout="soon"), "wait_timeout"),
        (dict(pg_conn_params, user=["x"], login_port="fivefourthreetwo"), "login_port"),
    ]
    run = run_playbook([{"ops.runbooks.pg_sessions": args} for args, _ in bad])
    for (args, needle), res in zip(bad, run.results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"], (needle, res["msg"])
    assert pg_conn_params["login_password"] not in run.stdout


def test_verify_probes_prove_the_change(lab, pg_conn_params):
    from tests.helpers.servers import closed_port

    app = f"verify-{uuid.uuid4().hex[:6]}"
    victims = [_idle_in_tx(lab, app), _idle_in_tx(lab, app)]
    probe_ok = {"type": "postgres", "host": lab.primary.host, "port": lab.primary.port,
                "login_user": lab.admin_user, "login_password": lab.admin_password,
                # app is a hex name made here, not input
                "query": f"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = '{app}'"}  # noqa: S608
    probe_down = {"type": "tcp", "host": "127.0.0.1", "port": closed_port()}
    run = run_playbook([
        {"ops.runbooks.pg_sessions": dict(pg_conn_params, application_name=[app], verify=[probe_ok])},
        {"ops.runbooks.pg_sessions": dict(pg_conn_params, application_name=[app], verify=[probe_down])},
    ])
    proved, nothing_to_prove = run.results
    assert proved.changed and proved["verification"]["healthy"], proved
    assert not nothing_to_prove.failed and "verification" not in nothing_to_prove
    other = _idle_in_tx(lab, app + "-x")
    failed = run_module("pg_sessions", dict(pg_conn_params, application_name=[app + "-x"], verify=[probe_down],
                                            verify_timeout=1))
    assert failed.failed and "verification failed" in failed["msg"], failed
    assert failed["verification"]["healthy"] is False
    assert lab.admin_password not in run.stdout
    for conn in victims + [other]:
        conn.close()
