"""traffic_switch and app_rollback procedures against an in-memory backend (the decisions, not the platform)."""

from __future__ import annotations

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend, writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._procedures import app_rollback, traffic_switch
from tests.helpers.servers import closed_port


class Module:
    def __init__(self, check_mode=False, **params):
        self.params = dict(dict(platform="memory", platform_settings={}, verify=[], verify_timeout=60), **params)
        self.check_mode = check_mode
        self._diff = True
        self.no_log_values = set()


def rev(id_, image="app:1"):
    return {"id": id_, "image": image, "image_id": f"sha256:{image}", "config": {"APP_IMAGE": image},
            "recorded_at": None}


class MemoryBackend(Backend):
    platform = "memory"

    def __init__(self, check_mode=False):
        super().__init__({}, check_mode)
        self.active = "blue"
        self.health = {"app_blue": "healthy", "app_green": "healthy"}
        self.running = rev("aaaaaaaaaaaa")
        self.log = []  # oldest first
        self.images = {"app:1", "app:2"}
        self.calls = []

    def slots(self):
        return {"blue": "app_blue", "green": "app_green"}

    def active_slot(self):
        return self.active

    @writes
    def switch_slot(self, slot):
        self.calls.append(("switch", slot))
        self.active = slot

    def replicas(self, service):
        return [{"id": "1", "name": f"{service}-1", "state": "running", "health": self.health.get(service, "healthy"),
                 "image": self.running["image"], "started_at": None}]

    def revision_vars(self, service):
        return ["APP_IMAGE"]

    def current_revision(self, service):
        return dict(self.running)

    def revision_history(self, service):
        return list(reversed(self.log))

    @writes
    def record_revision(self, service, revision):
        if self.log and self.log[-1]["id"] == revision["id"]:
            return False
        self.log.append(dict(revision, recorded_at="now"))
        return True

    def require_deployable(self, service, revision):
        if revision["image"] not in self.images:
            raise RunbookError(f"image {revision['image']} is gone")

    @writes
    def deploy_revision(self, service, revision):
        self.calls.append(("deploy", revision["id"]))
        self.running = {k: v for k, v in revision.items() if k != "recorded_at"}
        return {}


@pytest.fixture()
def backend(monkeypatch):
    made = MemoryBackend()
    for module in (traffic_switch, app_rollback):
        monkeypatch.setattr(module, "select_backend",
                            lambda platform, settings, check_mode: setattr(made, "check_mode", check_mode) or made)
    return made


def switch(check_mode=False, **params):
    params = dict(dict(to="green", force=False, public_url=None, health_path="/health/ready", version_path="/version"),
                  **params)
    return traffic_switch.TrafficSwitch(Module(check_mode, **params)).run()


def test_switch_plans_in_check_mode_and_changes_nothing(backend):
    result = switch(check_mode=True)
    assert result["changed"] and result["active_slot"] == "green" and result["previous_slot"] == "blue"
    assert "from blue (app_blue) to green (app_green)" in result["plan"][0]
    assert backend.active == "blue" and backend.calls == []


def test_switch_is_a_no_op_on_the_active_slot(backend):
    backend.active = "green"
    result = switch()
    assert not result["changed"] and result["plan"] == [] and backend.calls == []


def test_switch_refuses_an_unhealthy_slot_unless_forced(backend):
    backend.health["app_green"] = "unhealthy"
    with pytest.raises(RunbookError, match="refused: app_green is not serving .*unhealthy.*traffic stays on blue"):
        switch()
    assert backend.calls == []
    result = switch(force=True)
    assert result["changed"] and backend.active == "green" and "although" in result["warnings"][0]


def test_failed_verification_switches_back_and_says_where_traffic_is(backend):
    probe = {"type": "tcp", "host": "127.0.0.1", "port": closed_port()}
    with pytest.raises(RunbookError) as err:
        switch(verify=[probe], verify_timeout=0.5)
    assert err.value.msg.endswith("traffic is back on blue")
    assert backend.calls == [("switch", "green"), ("switch", "blue")] and backend.active == "blue"


def test_unknown_slot_is_rejected_before_anything(backend):
    with pytest.raises(ParameterError, match="^to: 'purple' is not a slot .* choose one of blue, green"):
        switch(to="purple")


def rollback(check_mode=False, **params):
    params = dict(dict(service="app", to_revision=None, steps_back=None, wait_timeout=5), **params)
    return app_rollback.AppRollback(Module(check_mode, **params)).run()


def test_rollback_records_then_goes_back_one_step(backend):
    backend.log = [rev("aaaaaaaaaaaa")]
    backend.running = rev("bbbbbbbbbbbb", "app:2")
    predicted = rollback(check_mode=True)
    assert predicted["changed"] and predicted["revision"]["id"] == "aaaaaaaaaaaa" and not predicted["recorded"]
    assert [r["id"] for r in predicted["revisions"]] == ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]
    assert len(backend.log) == 1 and backend.calls == []
    done = rollback()
    assert done["changed"] and done["recorded"] and backend.calls == [("deploy", "aaaaaaaaaaaa")]
    assert [r["id"] for r in backend.revision_history("app")] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "aaaaaaaaaaaa"]
    again = rollback(to_revision="aaaaaaaaaaaa")
    assert not again["changed"] and len(backend.calls) == 1


def test_rollback_without_history_explains_how_to_record(backend):
    first = rollback(steps_back=0)
    assert not first["changed"] and first["recorded"]
    with pytest.raises(RunbookError, match="only 0 earlier revision.*steps_back=0 after every deploy"):
        rollback()


def test_rollback_to_a_missing_image_fails_before_deploying(backend):
    backend.log = [rev("cccccccccccc", "app:gone")]
    backend.running = rev("bbbbbbbbbbbb", "app:2")
    with pytest.raises(RunbookError, match="app:gone is gone"):
        rollback(to_revision="cccccccccccc")
    assert backend.calls == []


def test_failed_verification_redeploys_the_previous_revision(backend):
    backend.log = [rev("aaaaaaaaaaaa")]
    backend.running = rev("bbbbbbbbbbbb", "app:2")
    probe = {"type": "tcp", "host": "127.0.0.1", "port": closed_port()}
    with pytest.raises(RunbookError) as err:
        rollback(verify=[probe], verify_timeout=0.5)
    assert err.value.msg.endswith("app is back on revision bbbbbbbbbbbb")
    assert backend.calls == [("deploy", "aaaaaaaaaaaa"), ("deploy", "bbbbbbbbbbbb")]
    assert backend.running["id"] == "bbbbbbbbbbbb"


@pytest.mark.parametrize("params,needle", [
    (dict(service="app; rm -rf /"), "service: 'app; rm -rf /' is not a service name"),
    (dict(to_revision="HEAD~1"), "to_revision: 'HEAD~1' is not a revision id"),
    (dict(steps_back=-1), "steps_back: must be zero or more"),
    (dict(wait_timeout="soon"), "wait_timeout: 'soon' is not a duration"),
])
def test_rollback_bad_input(backend, params, needle):
    with pytest.raises(ParameterError) as err:
        rollback(**params)
    assert needle in err.value.msg
    assert backend.calls == []
