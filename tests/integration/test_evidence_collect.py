"""evidence_collect against the running Compose lab: the bundle holds the evidence and none of the lab's secrets."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import uuid

import psycopg
import pytest

from tests.helpers.ansible import run_playbook

pytestmark = pytest.mark.integration

PG = {"login_host": "127.0.0.1", "login_port": 58432, "login_user": "runbook_admin"}


def _secrets(compose_lab):
    # An empty file (no previous JWT key accepted) holds no secret.
    found = {p.name: p.read_text().strip() for p in (compose_lab.dir / "secrets").iterdir()}
    return {name: value for name, value in found.items() if value}


def _extract(path):
    with tarfile.open(path) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _text(files):
    return {name: content.decode("utf-8", "replace") for name, content in files.items()}


def _leak_into_the_lab(compose_lab, secrets, marker, token):
    """Put secret values where evidence is taken from: request URLs (logged by nginx and the app), a failed SQL
    statement (logged by PostgreSQL) and the query of a session left open (seen in pg_stat_activity)."""
    for port in ("BLUE_PORT", "GREEN_PORT"):
        url = f"{compose_lab.url(port)}/{marker}?redis={secrets['redis_password']}&token={token}"
        with pytest.raises(urllib.error.HTTPError):  # 404 from the app, logged with the path
            urllib.request.urlopen(url, timeout=10)
    conn = psycopg.connect(host=PG["login_host"], port=PG["login_port"], user=PG["login_user"],
                           password=secrets["db_admin_password"], dbname="postgres", autocommit=True,
                           application_name=marker)
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute(f"SELECT '{secrets['db_replication_password']}' FROM {marker}_nowhere")  # noqa: S608
    conn.execute(f"SELECT '{secrets['db_app_password']}' AS {marker}")  # noqa: S608
    return conn


def test_bundle_holds_evidence_and_no_secret(compose_lab, compose_platform, tmp_path):
    secrets = _secrets(compose_lab)
    marker, token = f"evidence_{uuid.uuid4().hex[:8]}", f"extra-token-{uuid.uuid4().hex}"
    session = _leak_into_the_lab(compose_lab, secrets, marker, token)
    dest = tmp_path / "bundles"
    args = dict(compose_platform, dest=str(dest), since="10min", redact=[token],
                postgres=dict(PG, login_password=secrets["db_admin_password"]))
    try:
        run = run_playbook([{"ops.runbooks.evidence_collect": dict(args, dest=str(tmp_path / "check")),
                             "check_mode": True},
                            {"ops.runbooks.evidence_collect": args}])
    finally:
        session.close()
    check, apply = run.results

    assert not check.failed and check.changed, check
    listed = {f["path"] for f in check["files"]}
    assert {"compose/ps.txt", "database/activity.json", "logs/ops-runbooks-lab-nginx-1.log",
            "containers/ops-runbooks-lab-redis-1.json"} <= listed
    assert not (tmp_path / "check").exists()

    assert not apply.failed and apply.changed, apply
    path = apply["path"]
    assert os.path.dirname(path) == str(dest)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = open(path, "rb").read()
    assert hashlib.sha256(data).hexdigest() == apply["sha256"]
    assert open(apply["sha256_file"]).read() == f"{apply['sha256']}  {os.path.basename(path)}\n"
    files = _extract(path)
    manifest = json.loads(files.pop("manifest.json"))
    assert {e["path"] for e in manifest["files"]} == set(files)
    for entry in manifest["files"]:
        assert hashlib.sha256(files[entry["path"]]).hexdigest() == entry["sha256"], entry["path"]

    # The secrets did reach the evidence, and were replaced there.
    text = _text(files)
    assert f"/{marker}?redis=[REDACTED]&token=[REDACTED]" in text["logs/ops-runbooks-lab-nginx-1.log"]
    assert f"SELECT '[REDACTED]' AS {marker}" in text["database/activity.json"]
    failed_statement = f"SELECT '[REDACTED]' FROM {marker}_nowhere"  # noqa: S608 (a log line, not a query)
    assert failed_statement in text["logs/ops-runbooks-lab-db_primary-1.log"]
    for name, content in text.items():
        if name.startswith("containers/"):
            env = json.loads(content)["Config"]["Env"]
            assert env and all(e.endswith("=[REDACTED]") for e in env), name
    assert "ops-runbooks-lab-app_blue-1" in text["compose/ps.txt"]

    # Zero hits: no secret of the lab, nor the task's, in any file (as bytes), the result or the task output.
    values = list(secrets.values()) + [token]
    for name, content in files.items():
        for value in values:
            assert content.find(value.encode()) == -1, f"a secret value is in {name}"
    for value in values:
        assert value not in json.dumps(apply) and value not in run.stdout


def test_services_filter_and_deploy_history(compose_lab, compose_platform, tmp_path):
    """Deploy history is read from the project directory: a copy of the lab's, with a recorded revision that
    mentions a secret, so the shared lab directory is not touched."""
    project = tmp_path / "project"
    shutil.copytree(compose_lab.dir, project, ignore=shutil.ignore_patterns("nginx"))
    (project / ".runbooks" / "revisions").mkdir(parents=True, exist_ok=True)
    recorded = {f"deploy-history/{p.name}" for p in (project / ".runbooks" / "revisions").glob("*.json")}
    secret = _secrets(compose_lab)["redis_password"]
    (project / ".runbooks" / "revisions" / "r1.json").write_text(json.dumps({"id": "r1", "note": secret}))
    settings = dict(compose_platform["platform_settings"], project_dir=str(project), env_file=str(project / ".env"))
    args = dict(platform="compose", platform_settings=settings, dest=str(tmp_path / "out"), since="1h",
                services=["redis"])
    run = run_playbook([{"ops.runbooks.evidence_collect": args},
                        {"ops.runbooks.evidence_collect": dict(args, deploy_history=False)}])
    with_history, without = run.results
    assert not with_history.failed, with_history
    files = _text(_extract(with_history["path"]))
    assert set(files) == {"manifest.json", "compose/ps.txt", "containers/ops-runbooks-lab-redis-1.json",
                          "logs/ops-runbooks-lab-redis-1.log", "deploy-history/r1.json"} | recorded
    assert json.loads(files["deploy-history/r1.json"]) == {"id": "r1", "note": "[REDACTED]"}
    assert "app_blue" not in files["compose/ps.txt"]
    assert "deploy-history/r1.json" not in {f["path"] for f in without["files"]}


def test_bad_input(compose_platform, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    dest = str(tmp_path / "out")
    base = dict(compose_platform, dest=dest)
    bad = [
        (dict(compose_platform), "dest"),
        (dict(base, since="yesterday"), "since"),
        (dict(base, since="2999-01-01T00:00:00Z"), "since"),
        (dict(base, dest=str(a_file)), "dest"),
        (dict(base, services=["nope; rm -rf /"]), "services"),
        (dict(base, postgres={"login_port": "fivefour"}), "login_port"),
        (dict(base, postgres={"ssl_mode": "always"}), "ssl_mode"),
        (dict(base, deploy_history="maybe"), "deploy_history"),
        (dict(base, platform="kubernetes"), "platform"),
        (dict(base, platform_settings={"project_dir": "/tmp"}), "platform_settings.project_name"),
        (dict(base, platform="self_managed"), "collect evidence"),
    ]
    run = run_playbook([{"ops.runbooks.evidence_collect": args} for args, _ in bad])
    for (args, needle), res in zip(bad, run.results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"], (needle, res["msg"])
    assert not os.path.exists(dest)
