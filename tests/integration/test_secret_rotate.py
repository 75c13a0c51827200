"""secret_rotate against the Compose lab's real PostgreSQL, Redis and application: the app keeps answering while
its credentials rotate, old credentials stop working, interrupted rotations are resumed or rolled back, and no
secret value reaches any output."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import psycopg
import pytest
import redis

from tests.helpers.ansible import ROOT, dumps, run_playbook

pytestmark = pytest.mark.integration

PUBLIC = "http://127.0.0.1:58080"
SLOTS = {"app_blue": "http://127.0.0.1:58081", "app_green": "http://127.0.0.1:58082"}
PG = {"host": "127.0.0.1", "port": 58432, "dbname": "app"}
REDIS = {"host": "127.0.0.1", "port": 58379}
CONSUMERS = ["app_blue", "app_green"]
CHECK = {"port": 8000, "path": "/credentials"}
FAULT = "OPS_RUNBOOKS_SECRET_ROTATE_FAULT"
MIN_REQUESTS = 100


def fingerprint(value):
    return "sha256:" + hashlib.sha256(b"ops.runbooks fingerprint:" + value.encode()).hexdigest()[:16]


class Lab:
    """What the tests read from the lab directly, never through the module under test."""

    def __init__(self, deployment):
        self.dir = deployment.dir
        self.project = deployment.project

    def secret(self, name):
        return (self.dir / "secrets" / name).read_text().strip()

    def db_user(self):
        return (self.dir / "config" / "db_app_user").read_text().strip()

    def snapshot(self):
        """Every file of the store and of the recorded state, with its content hash: equal means nothing changed."""
        found = {}
        for sub in ("secrets", "config", ".runbooks/rotations"):
            base = self.dir / sub
            for path in sorted(base.rglob("*")) if base.exists() else []:
                if path.is_file() and not path.name.endswith(".lock"):
                    found[str(path.relative_to(self.dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    def roles(self):
        with psycopg.connect(user="runbook_admin", password=self.secret("db_admin_password"), **PG) as conn:
            return conn.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('app', 'app_a', 'app_b') "
                                "ORDER BY 1").fetchall()

    def forget(self, name):
        for suffix in (".json", ".lock"):
            (self.dir / ".runbooks" / "rotations" / f"{name}{suffix}").unlink(missing_ok=True)


def pg_login(user, password):
    """True when PostgreSQL lets ``user`` in with ``password``, False when it refuses the credential."""
    try:
        with psycopg.connect(user=user, password=password, connect_timeout=5, **PG) as conn:
            return conn.execute("SELECT session_user").fetchone()[0] == user
    except psycopg.OperationalError as exc:
        assert "authentication failed" in str(exc) or "not permitted to log in" in str(exc), exc
        return False


def redis_login(password, user="default"):
    client = redis.Redis(username=user, password=password, socket_timeout=5, **REDIS)
    try:
        return client.ping() is True
    except redis.AuthenticationError:
        return False
    finally:
        client.close()


def replicas(project):
    client = docker.from_env()
    try:
        found = client.containers.list(filters={"label": [f"com.docker.compose.project={project}"]})
        return {c.name: c for c in found if c.labels.get("com.docker.compose.service") in CONSUMERS}
    finally:
        client.close()


def credentials_of_every_replica(project):
    """/credentials of each app replica, asked inside the container (not through nginx or the module)."""
    found = {}
    for name, container in replicas(project).items():
        code, out = container.exec_run(["python3", "-c", "import urllib.request; print(urllib.request.urlopen("
                                        "'http://127.0.0.1:8000/credentials', timeout=5).read().decode())"])
        assert code == 0, (name, out)
        found[name] = json.loads(out)
    assert len(found) == 3, found
    return found


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Load(threading.Thread):
    """Requests through nginx, one after another, until stopped: writes (PostgreSQL), reads (Redis cache, then
    PostgreSQL) and versions. Every answer that is not the expected one, or a connection error, is a failure."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.requests, self.failures, self.last_id = 0, [], None

    def run(self):
        while not self.stop.is_set():
            self.requests += 1
            try:
                if self.requests % 3 == 0 or self.last_id is None:
                    status, body = http("POST", PUBLIC + "/items", {"n": self.requests})
                    expected = 201
                    self.last_id = body.get("id", self.last_id)
                elif self.requests % 3 == 1:
                    status, body = http("GET", f"{PUBLIC}/items/{self.last_id}")
                    expected = 200
                else:
                    status, body = http("GET", PUBLIC + "/version")
                    expected = 200
                if status != expected:
                    self.failures.append((self.requests, status, body))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.failures.append((self.requests, type(exc).__name__, str(exc)))

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(30)


@pytest.fixture()
def lab(compose_lab):
    return Lab(compose_lab)


@pytest.fixture()
def rotation_name(lab):
    """A fresh rotation name (so the first run is a first rotation), its state removed afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    lab.forget(name)


def pg_args(compose_platform, lab, name, **extra):
    return {**compose_platform, "name": name, "kind": "postgres_role", "secret": "db_app_password",
            "user_setting": "db_app_user", "group_role": "app", "login_roles": ["app_a", "app_b"],
            "postgres": {"login_host": PG["host"], "login_port": PG["port"], "db": PG["dbname"],
                         "login_user": "runbook_admin", "login_password": lab.secret("db_admin_password")},
            "consumers": CONSUMERS, "consumer_check": CHECK, **extra}


def redis_args(compose_platform, name, **extra):
    return {**compose_platform, "name": name, "kind": "redis_acl", "secret": "redis_password", "acl_user": "default",
            "redis": dict(REDIS), "consumers": CONSUMERS, "consumer_check": CHECK, **extra}


def jwt_args(compose_platform, name, **extra):
    return {**compose_platform, "name": name, "kind": "app_secret", "secret": "jwt_signing_key",
            "previous_secret": "jwt_signing_key_previous", "consumers": CONSUMERS, "consumer_check": CHECK, **extra}


# -- bad input ------------------------------------------------------------------------------------------------
def test_bad_input_is_rejected_before_anything_changes(lab, compose_platform, rotation_name):
    before, roles = lab.snapshot(), lab.roles()
    pg = pg_args(compose_platform, lab, rotation_name)
    cases = [
        ({k: v for k, v in pg.items() if k != "name"}, "name"),
        (dict(pg, name="../../etc/passwd"), "name"),
        (dict(pg, kind="vault"), "kind"),
        (dict(pg, secret="../db_admin_password"), "secret"),
        (dict(pg, login_roles=["app_a", "app_b; DROP ROLE runbook_admin"]), "login_roles[1]"),
        (dict(pg, login_roles=['app_a"--', "app_b"]), "login_roles[0]"),
        (dict(pg, login_roles=["app_a"]), "login_roles"),
        (dict(pg, login_roles=["app_a", "app_a"]), "login_roles"),
        (dict(pg, login_roles=["app", "app_b"]), "login_roles"),
        (dict(pg, group_role="app WITH SUPERUSER"), "group_role"),
        (dict(pg, group_role=None), "group_role"),
        (dict(pg, user_setting="../../x"), "user_setting"),
        (dict(pg, consumers=["app_blue; rm -rf /"]), "consumers[0]"),
        (dict(pg, consumer_check={"port": 0}), "consumer_check.port"),
        (dict(pg, consumer_check={"port": 8000, "path": "credentials"}), "consumer_check.path"),
        (dict(pg, consumers=[]), "consumer_check"),
        (dict(pg, max_age="a month"), "max_age"),
        (dict(pg, max_age=-5), "max_age"),
        (dict(pg, roll_timeout=0), "roll_timeout"),
        (dict(pg, length=8), "length"),
        (dict(pg, interrupted="ignore"), "interrupted"),
        (dict(pg, platform="kubernetes"), "platform"),
        (dict(pg, platform_settings={"project_name": "x"}), "platform_settings.project_dir"),
        (dict(pg, verify=[{"type": "http"}]), "verify[0].url"),
        (redis_args(compose_platform, rotation_name, acl_user="default on >pw ~* +@all"), "acl_user"),
        (redis_args(compose_platform, rotation_name, redis={"port": 58379}), "redis.host"),
        (redis_args(compose_platform, rotation_name, redis={"host": "127.0.0.1", "port": 70000}), "redis.port"),
        (jwt_args(compose_platform, rotation_name, previous_secret=None), "previous_secret"),
        (jwt_args(compose_platform, rotation_name, previous_secret="jwt_signing_key"), "previous_secret"),
        # Found only by asking the platform, still before anything is written.
        (dict(pg, secret="no_such_secret"), "secret"),
        (dict(pg, group_role="no_such_group"), "group_role"),
    ]
    results = run_playbook([{"ops.runbooks.secret_rotate": args} for args, _ in cases]).results
    for (_args, param), result in zip(cases, results, strict=True):
        assert result.failed, (param, dumps(result))
        assert param in result["msg"] or result.get("parameter") == param, (param, result["msg"])
    assert lab.snapshot() == before
    assert lab.roles() == roles


# -- PostgreSQL: the four steps, under load -------------------------------------------------------------------
def test_postgres_role_rotation_four_steps_under_load(lab, compose_platform, rotation_name):
    old_user, old_password = lab.db_user(), lab.secret("db_app_password")
    new_user = "app_b" if old_user == "app_a" else "app_a"
    args = pg_args(compose_platform, lab, rotation_name, max_age="30d")
    before = lab.snapshot()
    tasks = [{"name": "check 1", "ops.runbooks.secret_rotate": args, "check_mode": True},
             {"name": "apply 1", "ops.runbooks.secret_rotate": args},
             {"name": "check 2", "ops.runbooks.secret_rotate": args, "check_mode": True},
             {"name": "apply 2", "ops.runbooks.secret_rotate": args}]
    with Load() as load:
        run = run_playbook(tasks[:1], diff=True)
        check1 = run.results[0]
        # Check mode predicted the rotation and changed nothing.
        assert not check1.failed and check1.changed, dumps(check1)
        assert lab.snapshot() == before
        assert check1["identity"] == new_user and check1["version"] == 1 and check1["phases"] == []
        assert any(f'CREATE ROLE "{new_user}"' in p or f'ALTER ROLE "{new_user}"' in p for p in check1["plan"])
        assert any(f'ALTER ROLE "{old_user}" WITH NOLOGIN PASSWORD NULL' in p for p in check1["plan"])
        apply1, check2, apply2 = run_playbook(tasks[1:], diff=True).results
    assert not apply1.failed and apply1.changed, dumps(apply1)
    assert [p["phase"] for p in apply1["phases"]] == ["staged", "created", "stored", "rolled", "verified", "retired",
                                                      "complete"]
    assert not check2.failed and not check2.changed and check2["plan"] == [], dumps(check2)
    assert not apply2.failed and not apply2.changed, dumps(apply2)

    # The application answered every request while its credential changed under it.
    assert load.failures == [], load.failures[:10]
    assert load.requests >= MIN_REQUESTS, load.requests

    new_password = lab.secret("db_app_password")
    assert new_password != old_password and lab.db_user() == new_user
    assert apply1["identity"] == new_user and apply1["fingerprint"] == fingerprint(new_password)
    assert apply1["previous"] == {"version": 0, "identity": old_user, "fingerprint": fingerprint(old_password)}
    # The new credential works, the old one does not, and every replica uses the new one.
    assert pg_login(new_user, new_password)
    assert not pg_login(old_user, old_password)
    for name, creds in credentials_of_every_replica(lab.project).items():
        assert creds["database"] == {"user": new_user, "password": fingerprint(new_password)}, (name, creds)
    assert (lab.dir / "secrets" / "db_app_password").stat().st_mode & 0o777 == 0o600
    state = json.loads((lab.dir / ".runbooks" / "rotations" / f"{rotation_name}.json").read_text())
    assert state["version"] == 1 and state["identity"] == new_user and "rotation" not in state
    assert not list((lab.dir / "secrets").glob(".*"))  # no staged value left behind


# -- Redis and a JWT key --------------------------------------------------------------------------------------
def test_redis_acl_rotation_keeps_the_app_answering(lab, compose_platform, rotation_name):
    old = lab.secret("redis_password")
    with Load() as load:
        result = run_playbook([{"ops.runbooks.secret_rotate": redis_args(compose_platform, rotation_name)}]).results[0]
    assert not result.failed and result.changed, dumps(result)
    assert load.failures == [], load.failures[:10]
    assert load.requests >= MIN_REQUESTS // 2, load.requests
    new = lab.secret("redis_password")
    assert new != old and result["fingerprint"] == fingerprint(new)
    assert redis_login(new) and not redis_login(old)
    for name, creds in credentials_of_every_replica(lab.project).items():
        assert creds["redis"]["password"] == fingerprint(new), name


def test_interrupted_jwt_rotation_accepts_both_keys_then_resumes(lab, compose_platform, rotation_name):
    """Killed right after the consumers were verified: they accept tokens of both keys (the old one as previous);
    the next run resumes, retires the old key, and the old tokens are refused."""
    old_key = lab.secret("jwt_signing_key")
    status, issued = http("POST", SLOTS["app_blue"] + "/token")
    assert status == 200 and issued["key"] == fingerprint(old_key), issued
    old_token = {"Authorization": f"Bearer {issued['token']}"}
    args = jwt_args(compose_platform, rotation_name)

    killed = run_playbook([{"ops.runbooks.secret_rotate": args}], envvars={FAULT: f"{rotation_name}:verified"})
    assert killed.results[0].failed, dumps(killed.results[0])
    state = json.loads((lab.dir / ".runbooks" / "rotations" / f"{rotation_name}.json").read_text())
    assert state["rotation"]["phases"] == ["staged", "created", "stored", "rolled", "verified"]
    new_key = lab.secret("jwt_signing_key")
    assert new_key != old_key and lab.secret("jwt_signing_key_previous") == old_key
    for url in SLOTS.values():  # both keys are accepted meanwhile
        assert http("GET", url + "/whoami", headers=old_token) == (200, {"key": "previous", "claims": {
            "sub": "lab", "slot": "blue"}})
        new_token = {"Authorization": f"Bearer {http('POST', url + '/token')[1]['token']}"}
        assert http("GET", url + "/whoami", headers=new_token)[1]["key"] == "current"

    with Load() as load:
        resumed = run_playbook([{"ops.runbooks.secret_rotate": args}]).results[0]
    assert not resumed.failed and resumed.changed, dumps(resumed)
    assert resumed["resumed_from"] == "verified"
    assert [p["phase"] for p in resumed["phases"]] == ["retired", "complete"]
    assert load.failures == [], load.failures[:10]
    assert lab.secret("jwt_signing_key_previous") == ""
    for url in SLOTS.values():
        assert http("GET", url + "/whoami", headers=old_token)[0] == 401
        assert http("GET", url + "/whoami", headers=new_token)[0] == 200
    for name, creds in credentials_of_every_replica(lab.project).items():
        assert creds["jwt"] == {"current": fingerprint(new_key), "previous": None}, name


# -- interrupted PostgreSQL rotations -------------------------------------------------------------------------
def test_killed_after_store_is_resumed_and_ends_consistent(lab, compose_platform, rotation_name):
    old_user, old_password = lab.db_user(), lab.secret("db_app_password")
    args = pg_args(compose_platform, lab, rotation_name)
    killed = run_playbook([{"ops.runbooks.secret_rotate": args}], envvars={FAULT: f"{rotation_name}:stored"})
    result = killed.results[0]
    assert result.failed and not result.get("phases"), dumps(result)  # the process died: no module result
    state = json.loads((lab.dir / ".runbooks" / "rotations" / f"{rotation_name}.json").read_text())
    assert state["rotation"]["phases"] == ["staged", "created", "stored"]
    new_user = state["rotation"]["new"]["identity"]
    new_password = lab.secret("db_app_password")
    # Half way: the store names the new credential, both credentials log in, the consumers still use the old one.
    assert lab.db_user() == new_user != old_user
    assert pg_login(new_user, new_password) and pg_login(old_user, old_password)
    assert all(c["database"]["user"] == old_user for c in credentials_of_every_replica(lab.project).values())

    with Load() as load:
        resumed = run_playbook([{"ops.runbooks.secret_rotate": args}]).results[0]
    assert not resumed.failed and resumed.changed, dumps(resumed)
    assert resumed["resumed_from"] == "stored"
    assert [p["phase"] for p in resumed["phases"]] == ["rolled", "verified", "retired", "complete"]
    assert load.failures == [], load.failures[:10]
    assert lab.secret("db_app_password") == new_password and lab.db_user() == new_user
    assert pg_login(new_user, new_password) and not pg_login(old_user, old_password)
    assert all(c["database"] == {"user": new_user, "password": fingerprint(new_password)}
               for c in credentials_of_every_replica(lab.project).values())
    again = run_playbook([{"ops.runbooks.secret_rotate": args}]).results[0]
    assert not again.failed and not again.changed, dumps(again)


def test_killed_after_create_is_rolled_back(lab, compose_platform, rotation_name):
    old = lab.secret("redis_password")
    args = redis_args(compose_platform, rotation_name)
    killed = run_playbook([{"ops.runbooks.secret_rotate": args}], envvars={FAULT: f"{rotation_name}:created"})
    assert killed.results[0].failed
    pending = lab.dir / "secrets" / ".redis_password.pending"
    new = pending.read_text()
    assert pending.stat().st_mode & 0o777 == 0o600
    assert redis_login(old) and redis_login(new)  # both passwords during the change

    rollback_args = dict(args, interrupted="rollback")
    check = run_playbook([{"ops.runbooks.secret_rotate": rollback_args}], check=True).results[0]
    assert not check.failed and check.changed and redis_login(new), dumps(check)
    result = run_playbook([{"ops.runbooks.secret_rotate": rollback_args}]).results[0]
    assert not result.failed and result.changed and result["rolled_back"], dumps(result)
    assert lab.secret("redis_password") == old
    assert redis_login(old) and not redis_login(new)
    assert not list((lab.dir / "secrets").glob(".*"))
    state = json.loads((lab.dir / ".runbooks" / "rotations" / f"{rotation_name}.json").read_text())
    assert "rotation" not in state and state["last_rollback"]["version"] == 1


# -- the leak test --------------------------------------------------------------------------------------------
def _bundle_text(path):
    with tarfile.open(path) as tar:
        return b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())


def test_no_secret_value_reaches_any_output(lab, compose_platform, tmp_path):
    """The rotation playbook at -vvv in check mode (changes nothing), then for real, then again (rotates nothing),
    then evidence_collect; every old and new value is searched for in the whole output, the reports, the recorded
    state, every container's log and the evidence bundle."""
    names = ("db_app_password", "redis_password", "jwt_signing_key")
    old = {n: lab.secret(n) for n in names}
    # Logs and evidence from this test on: other tests put the values of their time into logs on purpose (the
    # evidence_collect test checks that they are redacted).
    started = datetime.now(UTC) - timedelta(seconds=1)
    reports = tmp_path / "reports"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), OPS_RUNBOOKS_REPORT_DIR=str(reports))
    playbook = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ROOT / "inventories/lab/hosts.yml"),
                str(ROOT / "playbooks/rotate-secrets.yml"), "-vvv"]
    before = lab.snapshot()
    check = subprocess.run(playbook + ["--check", "-e", "secret_rotation_force=true"], capture_output=True,
                           text=True, timeout=600, env=env, cwd=ROOT)
    assert check.returncode == 0, check.stdout[-5000:] + check.stderr[-3000:]
    assert check.stdout.count("would rotate to version") == 3 and lab.snapshot() == before, check.stdout[-3000:]
    with Load() as load:
        first = subprocess.run(playbook + ["-e", "secret_rotation_force=true"], capture_output=True, text=True,
                               timeout=900, env=env, cwd=ROOT)
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-3000:]
    second = subprocess.run(playbook, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert second.returncode == 0, second.stdout[-5000:] + second.stderr[-3000:]
    assert "changed=0" in second.stdout, second.stdout[-3000:]
    assert load.failures == [], load.failures[:10]
    new = {n: lab.secret(n) for n in names}
    assert all(new[n] != old[n] for n in names)
    # The output is the real one: it names the new versions by their fingerprints.
    output = check.stdout + check.stderr + first.stdout + first.stderr + second.stdout + second.stderr
    assert all(fingerprint(v) in output for v in new.values()), output[-3000:]

    evidence = run_playbook([{"ops.runbooks.evidence_collect": dict(
        compose_platform, dest=str(tmp_path / "evidence"), since=started.isoformat(),
        postgres={"login_host": PG["host"], "login_port": PG["port"], "login_user": "runbook_admin",
                  "login_password": lab.secret("db_admin_password")})}]).results[0]
    assert not evidence.failed, dumps(evidence)

    client = docker.from_env()
    try:
        logs = {c.name: c.logs(since=int(started.timestamp())) for c in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={lab.project}"})}
    finally:
        client.close()
    assert len(logs) >= 7 and all(logs[n] for n in logs if "app_blue" in n), "the app's request log is searched"
    places = {"playbook output": output.encode(), "evidence bundle": _bundle_text(evidence["path"]),
              "evidence result": json.dumps(evidence).encode(), **{f"log of {n}": v for n, v in logs.items()}}
    places.update({f"report {p.name}": p.read_bytes() for p in reports.rglob("*") if p.is_file()})
    places.update({f"state {p.name}": p.read_bytes()
                   for p in (lab.dir / ".runbooks" / "rotations").glob("*.json")})
    assert any(k.startswith("report ") for k in places), sorted(places)
    hits = [(place, which, name) for place, content in places.items() for which, values in (("old", old), ("new", new))
            for name, value in values.items() if value.encode() in content]
    assert hits == [], hits
