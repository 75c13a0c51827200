"""app_restart on a platform that restarts by rollout, and app_scale with an autoscaler, against an in-memory
backend: the decisions (plan, wait, undo), not the platform."""

from __future__ import annotations

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend, writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._procedures import app_restart, app_scale


class Module:
    def __init__(self, check_mode=False, **params):
        self.params = dict(dict(platform="memory", platform_settings={}, verify=[], verify_timeout=60), **params)
        self.check_mode = check_mode
        self._diff = True
        self.no_log_values = set()


class RolloutBackend(Backend):
    platform = "memory"
    rollouts = True

    def __init__(self, check_mode=False, completes=True):
        super().__init__({}, check_mode)
        self.completes = completes
        self.pods = ["api-a", "api-b"]
        self.revision = "r1"
        self.hpa = None
        self.count = 2
        self.calls = []

    def replicas(self, service):
        return [{"id": p, "name": p, "state": "running", "health": "healthy", "image": "app:1", "started_at": None}
                for p in self.pods[:self.count]]

    def desired_replicas(self, service):
        return self.count

    @writes
    def restart_rollout(self, service):
        self.calls.append("restart")
        previous, self.revision = self.revision, "r2"
        if self.completes:
            self.pods = ["api-c", "api-d"]
        return {"previous": previous}

    def rollout_status(self, service):
        done = self.revision == "r1" or self.completes
        return done, "complete" if done else "1 of 2 new replicas updated"

    @writes
    def undo_restart(self, service, token):
        self.calls.append("undo")
        self.revision = token["previous"]

    def autoscaling(self, service):
        return self.hpa

    @writes
    def set_autoscaling(self, service, wanted):
        self.calls.append(("hpa", wanted))
        self.hpa = wanted
        if wanted:  # the autoscaler brings the count within its bounds
            self.count = min(max(self.count, wanted["min_replicas"]), wanted["max_replicas"])
            self.pods = [f"api-{i}" for i in range(self.count)]


def run(procedure_cls, backend, check_mode=False, **params):
    procedure = procedure_cls(Module(check_mode=check_mode, **params))
    procedure.validate = lambda: None
    procedure.backend = backend
    procedure.verify_probes = None
    for name, value in params.items():
        setattr(procedure, name, value)
    return procedure.run()


RESTART = dict(service="api", replica_timeout=1, stop_timeout=None)


def test_restart_by_rollout_is_one_step_and_waits_for_completion():
    backend = RolloutBackend()
    check = run(app_restart.AppRestart, RolloutBackend(check_mode=True), check_mode=True, **RESTART)
    assert check["changed"] and check["would_restart"] == ["api-a", "api-b"] and len(check["plan"]) == 1
    result = run(app_restart.AppRestart, backend, **RESTART)
    assert backend.calls == ["restart"] and result["restarted"][0]["replaced"] == ["api-a", "api-b"]
    assert result["restarted"][0]["replicas"] == ["api-c", "api-d"]


def test_restart_that_does_not_complete_is_undone():
    backend = RolloutBackend(completes=False)
    with pytest.raises(RunbookError) as err:
        run(app_restart.AppRestart, backend, **RESTART)
    assert backend.calls == ["restart", "undo"] and backend.revision == "r1"
    assert "did not complete" in err.value.msg and "the restart was undone" in err.value.msg
    assert err.value.details["rolled_back"]


AUTOSCALE = dict(service="api", replicas=None, wait_timeout=2,
                 autoscaling={"min_replicas": 3, "max_replicas": 5, "target_cpu_utilization": 70})


def test_autoscaler_set_then_nothing_to_do():
    backend = RolloutBackend()
    first = run(app_scale.AppScale, backend, **AUTOSCALE)
    assert first["changed"] and first["replicas"] == 3 and first["autoscaling"] == AUTOSCALE["autoscaling"]
    second = run(app_scale.AppScale, backend, **AUTOSCALE)
    assert not second["changed"] and second["plan"] == []


def test_autoscaler_removed_again_when_capacity_never_comes():
    backend = RolloutBackend()
    backend.set_autoscaling = writes(lambda self, service, wanted: (self.calls.append(("hpa", wanted)),
                                                                    setattr(self, "hpa", wanted))).__get__(backend)
    with pytest.raises(RunbookError) as err:
        run(app_scale.AppScale, backend, **AUTOSCALE)
    assert backend.calls[-1] == ("hpa", None) and backend.hpa is None
    assert err.value.details["rolled_back"] == ["removed the autoscaler of api again"]
