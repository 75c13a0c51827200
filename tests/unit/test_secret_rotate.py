"""secret_rotate's phases, policy, resume and rollback against an in-memory platform (kind app_secret, which needs
no server; the PostgreSQL and Redis kinds run against real servers in tests/integration/test_secret_rotate.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend, writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._procedures import secret_rotate
from ansible_collections.ops.runbooks.plugins.module_utils._procedures._credentials import fingerprint

OLD = "old-signing-key-0123456789abcdef"


class Killed(BaseException):
    """What the fault point does to the process, as an exception the test can catch."""


class MemoryPlatform(Backend):
    """A secret store, rotation state and one service whose replicas load the store when they (re)start."""

    platform = "memory"

    def __init__(self, check_mode=False):
        super().__init__({}, check_mode)
        self.store = {"key": OLD, "key_previous": ""}
        self.states = {}
        self.replica_ids = ["app-1", "app-2"]
        self.loaded = {r: dict(self.store) for r in self.replica_ids}
        self.starts = dict.fromkeys(self.replica_ids, 0)
        self.stuck = set()  # replicas that keep their old values over a restart
        self.writes = []

    def read_secret(self, name, staged=None):
        return self.store.get(name if staged is None else f"{name}.{staged}")

    @writes
    def write_secret(self, name, value, staged=None):
        self.writes.append(name if staged is None else f"{name}.{staged}")
        self.store[name if staged is None else f"{name}.{staged}"] = value

    @writes
    def remove_staged_secret(self, name, staged):
        self.store.pop(f"{name}.{staged}", None)

    def read_rotation_state(self, name):
        return json.loads(self.states[name]) if name in self.states else None

    @writes
    def write_rotation_state(self, name, state):
        self.states[name] = json.dumps(state)

    def rotation_lock(self, name):
        import contextlib

        return contextlib.nullcontext()

    def replicas(self, service):
        return [{"id": r, "name": r, "state": "running", "health": "healthy", "started_at": str(self.starts[r])}
                for r in self.replica_ids]

    @writes
    def restart_replica(self, service, replica_id, stop_timeout=None):
        self.starts[replica_id] += 1
        if replica_id not in self.stuck:  # consumers read the live entries, never the staged ones
            self.loaded[replica_id] = {k: self.store[k] for k in ("key", "key_previous")}
        return replica_id

    def replica_get(self, service, port, path, timeout=10):
        return [{"replica": r, "status": 200, "body": json.dumps({
            "current": fingerprint(v["key"]), "previous": fingerprint(v["key_previous"])})}
            for r, v in self.loaded.items()]


class Module:
    def __init__(self, check_mode=False, **params):
        defaults = dict(name="jwt", kind="app_secret", secret="key", previous_secret="key_previous",
                        consumers=["app"], consumer_check={"port": 8000, "path": "/credentials"}, max_age=None,
                        force=False, interrupted="resume", length=32, roll_timeout=2, stop_timeout=None,
                        postgres=None, group_role=None, login_roles=None, user_setting=None, redis=None,
                        acl_user="default", platform="memory", platform_settings={}, verify=[], verify_timeout=60)
        self.params = dict(defaults, **params)
        self.check_mode = check_mode
        self._diff = True
        self.no_log_values = set()
        self.argument_spec = secret_rotate.SecretRotate.argument_spec().argument_spec


@pytest.fixture()
def platform(monkeypatch):
    live = MemoryPlatform()

    def select(name, settings, check_mode):
        live.check_mode = check_mode
        return live

    monkeypatch.setattr(secret_rotate, "select_backend", select)
    return live


def rotate(check_mode=False, **params):
    module = Module(check_mode, **params)
    procedure = secret_rotate.SecretRotate(module)
    try:
        return procedure.run(), module
    finally:
        procedure.close()


def test_first_run_rotates_through_every_phase_and_shows_no_value(platform):
    result, module = rotate()
    new = platform.store["key"]
    assert result["changed"] and new != OLD and len(new) >= 40
    assert [p["phase"] for p in result["phases"]] == list(secret_rotate.PHASES) + ["complete"]
    assert result["version"] == 1 and result["fingerprint"] == fingerprint(new)
    assert result["previous"] == {"version": 0, "fingerprint": fingerprint(OLD), "identity": None}
    # Retired: the previous key is gone from the store and from every replica.
    assert platform.store["key_previous"] == "" and set(platform.store) == {"key", "key_previous"}
    assert all(v == {"key": new, "key_previous": ""} for v in platform.loaded.values())
    text = json.dumps(result) + json.dumps(platform.states)
    assert OLD not in text and new not in text
    assert {OLD, new} <= module.no_log_values  # masked by Ansible wherever they might still show


def test_check_mode_plans_and_writes_nothing(platform):
    result, _module = rotate(check_mode=True)
    assert result["changed"] and len(result["plan"]) == 7 and result["phases"] == []
    assert result["diff"]["after"]["version"] == 1 and result["diff"]["before"]["version"] == 0
    assert platform.store == {"key": OLD, "key_previous": ""} and platform.states == {} and platform.writes == []


def test_second_run_changes_nothing_until_max_age_or_force(platform):
    rotate(max_age="30d")
    again, _ = rotate(max_age="30d")
    assert not again["changed"] and again["plan"] == [] and again["reason"] is None
    state = json.loads(platform.states["jwt"])
    state["rotated_at"] = (datetime.now(UTC) - timedelta(days=31)).isoformat()
    platform.states["jwt"] = json.dumps(state)
    aged, _ = rotate(max_age="30d")
    assert aged["changed"] and aged["version"] == 2 and "max_age" in aged["reason"]
    forced, _ = rotate(max_age="30d", force=True)
    assert forced["changed"] and forced["version"] == 3 and forced["reason"] == "force"


def test_a_value_changed_by_hand_is_rotated_with_a_warning(platform):
    rotate()
    platform.store["key"] = "edited-by-hand-0123456789abcdefgh"
    result, _ = rotate()
    assert result["changed"] and result["reason"] == "changed outside this module"
    assert any("changed outside this module" in w for w in result["warnings"])


def test_a_consumer_that_keeps_the_old_value_rolls_the_rotation_back(platform):
    platform.stuck.add("app-2")
    with pytest.raises(RunbookError, match="do not report the expected credential fingerprint") as failure:
        rotate()
    assert platform.store["key"] == OLD and platform.store["key_previous"] == ""
    assert set(platform.store) == {"key", "key_previous"}  # staged values removed
    assert all(v["key"] == OLD for v in platform.loaded.values())
    assert "rotation" not in json.loads(platform.states["jwt"])
    assert failure.value.details["rolled_back"][0].startswith("put version 0 of key back")


@pytest.mark.parametrize("phase", secret_rotate.PHASES[:-1])
def test_a_run_killed_after_any_phase_is_resumed(platform, monkeypatch, phase):
    monkeypatch.setenv(secret_rotate.FAULT_ENV, f"jwt:{phase}")

    def kill(pid, signal):
        raise Killed()

    monkeypatch.setattr(secret_rotate.os, "kill", kill)
    with pytest.raises(Killed):
        rotate()
    assert json.loads(platform.states["jwt"])["rotation"]["phases"][-1] == phase
    monkeypatch.delenv(secret_rotate.FAULT_ENV)
    result, _ = rotate()
    assert result["changed"] and result["resumed_from"] == phase
    assert [p["phase"] for p in result["phases"]][0] == secret_rotate.PHASES[secret_rotate.PHASES.index(phase) + 1]
    new = platform.store["key"]
    assert new != OLD and result["fingerprint"] == fingerprint(new) and platform.store["key_previous"] == ""
    assert all(v == {"key": new, "key_previous": ""} for v in platform.loaded.values())
    assert not rotate()[0]["changed"]


@pytest.mark.parametrize("phase", ["staged", "created", "stored", "rolled"])
def test_a_run_killed_before_verification_can_be_rolled_back(platform, monkeypatch, phase):
    monkeypatch.setenv(secret_rotate.FAULT_ENV, f"jwt:{phase}")
    monkeypatch.setattr(secret_rotate.os, "kill", lambda *a: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        rotate()
    monkeypatch.delenv(secret_rotate.FAULT_ENV)
    check, _ = rotate(check_mode=True, interrupted="rollback")
    assert check["changed"] and "rotation" in json.loads(platform.states["jwt"])
    result, _ = rotate(interrupted="rollback")
    assert result["changed"] and result["rolled_back"] and result["version"] == 0
    assert platform.store == {"key": OLD, "key_previous": ""}
    assert all(v["key"] == OLD for v in platform.loaded.values())
    assert json.loads(platform.states["jwt"])["last_rollback"]["version"] == 1


def test_no_rollback_once_retired(platform, monkeypatch):
    monkeypatch.setenv(secret_rotate.FAULT_ENV, "jwt:retired")
    monkeypatch.setattr(secret_rotate.os, "kill", lambda *a: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        rotate()
    monkeypatch.delenv(secret_rotate.FAULT_ENV)
    with pytest.raises(RunbookError, match="cannot be rolled back"):
        rotate(interrupted="rollback")


@pytest.mark.parametrize("params, param", [
    (dict(name="../x"), "name"),
    (dict(name="a b"), "name"),
    (dict(secret="../../etc/shadow"), "secret"),
    (dict(previous_secret=None), "previous_secret"),
    (dict(previous_secret="key"), "previous_secret"),
    (dict(consumers=["app;reboot"]), "consumers[0]"),
    (dict(consumer_check={"port": 70000, "path": "/"}), "consumer_check.port"),
    (dict(consumer_check={"port": 80, "path": "/a b"}), "consumer_check.path"),
    (dict(max_age="soon"), "max_age"),
    (dict(length=4), "length"),
    (dict(roll_timeout=0), "roll_timeout"),
    (dict(kind="postgres_role", postgres={"login_host": "db"}, group_role="app", user_setting="u",
          login_roles=["app_a", "app_b'; DROP ROLE app; --"]), "login_roles[1]"),
    (dict(kind="postgres_role", postgres={"login_host": "db"}, group_role='app" SUPERUSER', user_setting="u",
          login_roles=["app_a", "app_b"]), "group_role"),
    (dict(kind="postgres_role", postgres={"login_host": "db"}, group_role="app", user_setting="u"), "login_roles"),
    (dict(kind="redis_acl", redis={"host": "r"}, acl_user="default >x +@all"), "acl_user"),
    (dict(kind="redis_acl", redis={"port": 6379}), "redis.host"),
])
def test_bad_input_names_the_parameter_and_touches_nothing(platform, params, param):
    with pytest.raises(ParameterError) as failure:
        rotate(**params)
    assert failure.value.param == param
    assert platform.writes == [] and platform.states == {}


def test_compose_store_rewrites_a_mounted_file_in_place_and_state_atomically(tmp_path):
    """Compose bind-mounts a secret's file: a running container only sees a new value written into the same inode.
    The state file is not mounted and is replaced whole, so a kill never leaves half of it."""
    from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.secrets import _write_file

    secret = tmp_path / "db_app_password"
    secret.write_text("a much longer old value than the new one")
    secret.chmod(0o644)
    inode = secret.stat().st_ino
    _write_file(str(secret), "new-value")
    assert secret.read_text() == "new-value" and secret.stat().st_ino == inode
    assert secret.stat().st_mode & 0o777 == 0o600
    created = tmp_path / ".db_app_password.pending"
    _write_file(str(created), "staged")
    assert created.read_text() == "staged" and created.stat().st_mode & 0o777 == 0o600
    state = tmp_path / "rotation.json"
    state.write_text("{}")
    inode = state.stat().st_ino
    _write_file(str(state), '{"version": 2}', in_place=False)
    assert state.read_text() == '{"version": 2}' and state.stat().st_ino != inode
    assert sorted(p.name for p in tmp_path.iterdir()) == [".db_app_password.pending", "db_app_password",
                                                          "rotation.json"]
