"""health_check through ansible-playbook against the lab PostgreSQL pair, a lab Redis and local HTTP(S) servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from lab import redis as redislab
from tests.helpers.ansible import run_playbook
from tests.helpers.fixtures import connect
from tests.helpers.servers import HangingServer, HttpServer, closed_port, make_certificates

pytestmark = pytest.mark.integration

MODULE = "ops.runbooks.health_check"


@pytest.fixture(scope="session")
def redis_lab():
    """The lab Redis on 127.0.0.1:56379 (installed and started when missing; stopped again if started here)."""
    if not shutil.which("redis-server"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env)
    base = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "redis"
    existing = redislab.RedisLab.load(base)
    started_here = existing is None or not existing.running()
    lab = redislab.up(base)
    yield lab
    if started_here:
        redislab.down(base)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """Plain HTTP and HTTPS servers; the certificate (for localhost / 127.0.0.1) expires in 40 days."""
    certs = make_certificates(tmp_path_factory.mktemp("tls"), days_left=40)
    plain, secure = HttpServer(), HttpServer(tls=(certs["cert"], certs["key"]))
    yield plain, secure, certs
    plain.close()
    secure.close()


def pg_target(params, **fields):
    return dict(type="postgres", login_host=params["login_host"], login_port=params["login_port"],
                login_user=params["login_user"], login_password=params["login_password"], **fields)


def test_lab_targets_are_healthy_in_normal_and_check_mode(lab, pg_conn_params, replica_conn_params, redis_lab, web):
    plain, secure, certs = web
    targets = [
        {"name": "app", "type": "http", "url": plain.url("/ok"), "body_regex": "ready", "max_latency": 10},
        {"name": "app over tls", "type": "http", "url": secure.url("/ok", host="localhost"), "ca_cert": certs["ca"]},
        {"name": "certificate", "type": "tls", "host": "127.0.0.1", "port": secure.port, "server_name": "localhost",
         "ca_cert": certs["ca"], "min_days": 30},
        {"name": "pg port", "type": "tcp", "host": lab.primary.host, "port": lab.primary.port},
        pg_target(pg_conn_params, name="primary writable", query="SELECT NOT pg_is_in_recovery()"),
        pg_target(replica_conn_params, name="replica replaying", query="SELECT pg_is_in_recovery()"),
        {"name": "cache", "type": "redis", "host": redis_lab.host, "port": redis_lab.port,
         "password": redis_lab.password},
        {"name": "cache acl user", "type": "redis", "host": redis_lab.host, "port": redis_lab.port,
         "username": redis_lab.acl_user, "password": redis_lab.acl_password},
    ]
    run = run_playbook([
        {"name": "normal", MODULE: {"targets": targets}},
        {"name": "check mode", MODULE: {"targets": targets}, "check_mode": True},
    ])
    for res in run.results:
        assert not res.failed and not res.changed, res
        assert res["healthy"] and res["counts"] == {"total": 8, "ok": 8, "failed": 0, "timed_out": 0}, res
        by_name = {t["name"]: t for t in res["targets"]}
        assert by_name["primary writable"]["detail"]["result"] is True
        assert by_name["replica replaying"]["detail"]["result"] is True
        assert by_name["cache acl user"]["detail"]["username"] == redis_lab.acl_user
        assert 39 < by_name["certificate"]["detail"]["days_left"] <= 40
        assert by_name["certificate"]["detail"]["subject_alt_names"] == ["localhost", "127.0.0.1"]
        assert res["plan"] == [] and "diff" not in res


def test_failing_targets_and_the_reason_for_each(lab, pg_conn_params, replica_conn_params, redis_lab):
    victim = f"health_probe_{uuid.uuid4().hex[:8]}"
    targets = [
        pg_target(replica_conn_params, name="replica is not primary", query="SELECT NOT pg_is_in_recovery()"),
        pg_target(pg_conn_params, name="probe cannot write", query=f"CREATE TABLE {victim} (id int)"),
        pg_target(pg_conn_params, name="wrong db", db="no_such_db_here"),
        {"name": "wrong redis password", "type": "redis", "host": redis_lab.host, "port": redis_lab.port,
         "password": "not-the-password"},
        {"name": "wrong acl password", "type": "redis", "host": redis_lab.host, "port": redis_lab.port,
         "username": redis_lab.acl_user, "password": redis_lab.password},
    ]
    res = run_playbook([{MODULE: {"targets": targets, "fail_on": "none"}}]).results[0]
    assert not res.failed and not res["healthy"], res
    by_name = {t["name"]: t for t in res["targets"]}
    assert by_name["replica is not primary"]["reason"] == "check"
    assert by_name["replica is not primary"]["detail"]["result"] is False
    assert by_name["probe cannot write"]["reason"] == "error"
    assert "read-only transaction" in by_name["probe cannot write"]["error"]
    assert "no_such_db_here" in by_name["wrong db"]["error"]
    assert by_name["wrong redis password"]["reason"] == "error"
    assert by_name["wrong acl password"]["reason"] == "error"
    with connect(lab) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (victim,)).fetchone()[0] is None


def test_fail_on_policies(web):
    plain, _secure, _certs = web
    ok = {"name": "up", "type": "http", "url": plain.url("/ok")}
    down = [{"name": f"down {i}", "type": "tcp", "host": "127.0.0.1", "port": closed_port()} for i in range(2)]
    cases = [
        ("any", [ok], False),
        ("any", [ok, down[0]], True),
        ("all", [ok, down[0]], False),
        ("all", down, True),
        ("none", down, False),
    ]
    run = run_playbook([{MODULE: {"targets": targets, "fail_on": fail_on}} for fail_on, targets, _ in cases])
    for (fail_on, targets, should_fail), res in zip(cases, run.results, strict=True):
        assert res.failed == should_fail, (fail_on, res)
        assert res["healthy"] == (targets == [ok]), res
        assert res["counts"]["total"] == len(targets) and len(res["targets"]) == len(targets)
        assert res["failed_targets"] == [t["name"] for t in targets if t is not ok]
    assert "1 of 2 targets are unhealthy" in run.results[1]["msg"] and "down 0 (" in run.results[1]["msg"]
    assert "fail_on=all" in run.results[3]["msg"]


def test_overall_timeout_with_a_hanging_target(web):
    plain, _secure, _certs = web
    hanging = HangingServer()
    try:
        res = run_playbook([{MODULE: {
            "targets": [{"name": "hangs", "type": "http", "url": f"http://127.0.0.1:{hanging.port}/health"},
                        {"name": "up", "type": "http", "url": plain.url("/ok")}],
            "timeout": 2, "retries": 3,
        }}]).results[0]
    finally:
        hanging.close()
    assert res.failed and res["counts"]["timed_out"] == 1, res
    hangs, up = res["targets"]
    assert hangs["reason"] == "timeout" and "overall timeout of 2" in hangs["error"]
    assert up["ok"]
    assert "hangs (no healthy answer" in res["msg"]


def test_secrets_never_reach_the_output(pg_conn_params, redis_lab, web):
    plain, _secure, _certs = web
    token = f"tok-{uuid.uuid4().hex}"
    url_password = f"pw-{uuid.uuid4().hex}"
    secrets = [pg_conn_params["login_password"], redis_lab.password, redis_lab.acl_password, token, url_password]
    targets = [
        {"type": "http", "url": plain.url("/status/401").replace("://", f"://ops:{url_password}@"),
         "headers": {"Authorization": f"Bearer {token}"}},
        {"type": "http", "url": f"http://{token}@127.0.0.1:{closed_port()}/"},
        pg_target(pg_conn_params, query="SELECT false"),
        pg_target(pg_conn_params, db="no_such_db_here"),
        {"type": "redis", "host": redis_lab.host, "port": redis_lab.port, "password": redis_lab.password},
        {"type": "redis", "host": redis_lab.host, "port": redis_lab.port, "username": redis_lab.acl_user,
         "password": redis_lab.acl_password},
        {"type": "redis", "host": redis_lab.host, "port": closed_port(), "password": redis_lab.password},
    ]
    run = run_playbook([{MODULE: {"targets": targets}}, {MODULE: {"targets": targets, "fail_on": "none"}}],
                       verbosity=1)
    assert run.results[0].failed and not run.results[1].failed
    output = run.stdout + json.dumps([dict(r) for r in run.results])
    assert [s for s in secrets if s in output] == []
    assert run.results[1]["targets"][0]["address"].startswith("http://********@127.0.0.1:")


def test_bad_input_is_rejected_before_any_target_is_contacted():
    counter = HttpServer()
    first = {"type": "http", "url": counter.url("/ok")}
    bad = [
        ([first, {"type": "ftp", "host": "x"}], {}, "targets[1].type"),
        ([first, {"type": "http"}], {}, "targets[1].url"),
        ([first, {"type": "http", "url": "http://x/", "body_regex": "(unclosed"}], {}, "targets[1].body_regex"),
        ([first, {"type": "tcp", "host": "x", "port": 70000}], {}, "targets[1].port"),
        ([first, {"type": "tcp", "host": "x", "port": 1, "retries": -2}], {}, "targets[1].retries"),
        ([first, {"type": "tcp", "host": "x", "port": 1, "url": "http://x/"}], {}, "targets[1].url"),
        ([first, {"type": "tls", "host": "x", "min_days": -1}], {}, "targets[1].min_days"),
        ([first, {"type": "tcp", "host": "x", "port": "fifty"}], {}, "port"),
        ([first, {"type": "tcp", "host": "x", "port": 1, "hostname": "y"}], {}, "hostname"),
        ([first], {"retries": -1}, "retries"),
        ([first], {"timeout": "soon"}, "timeout"),
        ([first], {"timeout": 0}, "timeout"),
        ([first], {"concurrency": 0}, "concurrency"),
        ([first], {"fail_on": "some"}, "fail_on"),
        ([], {}, "targets"),
    ]
    try:
        run = run_playbook([{MODULE: dict(options, targets=targets)} for targets, options, _ in bad])
        assert counter.requests == 0, "a target was contacted despite bad input"
    finally:
        counter.close()
    for (_targets, _options, needle), res in zip(bad, run.results, strict=True):
        assert res.failed, (needle, res)
        assert needle in res["msg"], (needle, res["msg"])
