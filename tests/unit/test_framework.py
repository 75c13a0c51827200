"""Framework: waits, validation, diff tracking, the procedure driver and backend selection."""

from __future__ import annotations

import re

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._backends import base as backends
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.diff import DifferenceTracker
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_until_returns_value_and_elapsed_time():
    clock = FakeClock()
    answers = iter([None, False, "ready"])
    value, elapsed = wait_until(lambda: next(answers), timeout=10, interval=2, sleep=clock.sleep, clock=clock)
    assert value == "ready"
    assert elapsed == 4.0
    assert clock.sleeps == [2, 2]


def test_wait_until_times_out_with_last_observation():
    clock = FakeClock()

    def probe():
        raise RunbookError("connection refused")

    with pytest.raises(RunbookError) as err:
        wait_until(probe, timeout=3, interval=1, what="db ready", sleep=clock.sleep, clock=clock)
    assert "db ready" in err.value.msg and "connection refused" in err.value.msg
    assert err.value.details["waited_seconds"] == 3.0
    # never sleeps past the deadline
    assert sum(clock.sleeps) == 3


def test_wait_until_requires_a_timeout():
    with pytest.raises(ValueError):
        wait_until(lambda: True, timeout=None)


@pytest.mark.parametrize("value", ["orders", "public.orders", "_x$1"])
def test_identifier_accepts_plain_names(value):
    assert validate.identifier(value, "tables", max_parts=2) == tuple(value.split("."))


@pytest.mark.parametrize("value", ["x; DROP TABLE y", "a.b.c", "1abc", "", 'or"ders', "a" * 64, "tab le"])
def test_identifier_rejects_and_names_parameter(value):
    with pytest.raises(ParameterError) as err:
        validate.identifier(value, "tables[0]", max_parts=2)
    assert err.value.msg.startswith("tables[0]:")
    assert err.value.details["parameter"] == "tables[0]"


@pytest.mark.parametrize("value,seconds", [(30, 30), ("30", 30), ("500ms", 0.5), ("5min", 300), ("2h", 7200),
                                           ("1d", 86400), ("1.5s", 1.5)])
def test_duration(value, seconds):
    assert validate.duration_seconds(value, "idle_for") == seconds


@pytest.mark.parametrize("value", ["ten", "5 weeks", "-3", "1e3s"])
def test_bad_duration_names_parameter(value):
    with pytest.raises(ParameterError, match="^idle_for:"):
        validate.duration_seconds(value, "idle_for")


@pytest.mark.parametrize("value,size", [(10, 10), ("1MB", 1048576), ("512kB", 524288), ("2 GiB", 2 * 1024**3)])
def test_size(value, size):
    assert validate.size_bytes(value, "max_lag_bytes") == size


def test_bad_size_names_parameter():
    with pytest.raises(ParameterError, match="^max_lag_bytes:"):
        validate.size_bytes("lots", "max_lag_bytes")


def test_difference_tracker():
    d = DifferenceTracker()
    d.add("replicas", 2, 2)
    assert not d.changed
    d.add("slot", "blue", "green")
    assert d.changed
    assert d.differences() == [{"name": "slot", "before": "blue", "after": "green"}]
    assert d.as_diff() == {"before": {"replicas": 2, "slot": "blue"}, "after": {"replicas": 2, "slot": "green"}}


def test_argument_spec_merge_keeps_constraints():
    a = ArgumentSpec({"x": {"type": "str"}}, mutually_exclusive=[["x", "y"]])
    b = ArgumentSpec({"y": {"type": "str"}}, required_by={"y": ["x"]})
    a.merge(b)
    assert set(a.argument_spec) == {"x", "y"}
    assert a.extra["mutually_exclusive"] == [["x", "y"]]
    assert a.extra["required_by"] == {"y": ["x"]}
    with pytest.raises(TypeError):
        ArgumentSpec({}, required_unless=[])


class FakeModule:
    def __init__(self, check_mode=False, diff=False, **params):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.argument_spec = {}


class Counter(Procedure):
    """Drives a counter to ``target``; verification can be made to fail."""

    def __init__(self, module, store, verify_ok=True):
        super().__init__(module)
        self.store = store
        self.verify_ok = verify_ok
        self.rolled_back = None

    def observe(self):
        return {"value": self.store["value"]}

    def plan(self, before):
        if before["value"] == self.params["target"]:
            return []
        return [Step(f"set value {before['value']} -> {self.params['target']}",
                     lambda: self.store.update(value=self.params["target"]))]

    def verify(self, before, applied):
        if not self.verify_ok:
            raise RunbookError("value did not stick")

    def rollback(self, before, applied, error):
        self.store["value"] = before["value"]
        self.rolled_back = error.msg
        return [f"restored value {before['value']}"]

    def project(self, before, steps):
        return {"value": self.params["target"]}


def test_procedure_check_mode_plans_without_applying():
    store = {"value": 1}
    result = Counter(FakeModule(check_mode=True, diff=True, target=3), store).run()
    assert result["changed"] and result["plan"] == ["set value 1 -> 3"]
    assert result["diff"] == {"before": {"value": 1}, "after": {"value": 3}}
    assert store["value"] == 1


def test_procedure_applies_then_reports_no_change():
    store = {"value": 1}
    first = Counter(FakeModule(target=3), store).run()
    second = Counter(FakeModule(target=3), store).run()
    assert first["changed"] and store["value"] == 3
    assert not second["changed"] and second["plan"] == []


def test_procedure_rolls_back_when_verify_fails():
    store = {"value": 1}
    proc = Counter(FakeModule(target=3), store, verify_ok=False)
    with pytest.raises(RunbookError) as err:
        proc.run()
    assert store["value"] == 1
    assert proc.rolled_back == "value did not stick"
    assert err.value.details["applied"] == ["set value 1 -> 3"]
    assert err.value.details["rolled_back"] == ["restored value 1"]


def test_procedure_closes_owned_resources():
    closed = []

    class Res:
        def close(self):
            closed.append(True)

    proc = Counter(FakeModule(target=1), {"value": 1})
    proc.own(Res())
    proc.own(Res())
    proc.close()
    assert closed == [True, True]


def test_select_backend_rejects_unknown_platform():
    with pytest.raises(ParameterError, match="^platform:"):
        backends.select_backend("mainframe")


class RecordingClient:
    """Stands in for every client a backend may be handed; records anything that would reach a server."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args))
            return []

        return record


@pytest.mark.parametrize("platform", backends.available_platforms())
def test_no_backend_writes_in_check_mode(platform):
    backend = backends.select_backend(platform, check_mode=True)
    methods = backends.write_methods(type(backend))
    assert methods, f"{platform} declares no write methods"
    for name in methods:
        client = RecordingClient()
        with pytest.raises(RunbookError, match="check mode"):
            getattr(backend, name)(client, 5)
        assert client.calls == [], f"{platform}.{name} reached the server in check mode"


def test_every_registered_backend_is_shipped_to_modules():
    # AnsiballZ packs only module_utils it can see imported; select_backend imports by name.
    import inspect

    source = inspect.getsource(backends._shipped_backends)
    for module_name, _cls in backends._REGISTRY.values():
        assert re.search(rf"\b{module_name},?\n", source), f"add {module_name} to _shipped_backends()"


class FailingProbes:
    def __init__(self):
        self.runs = 0

    def run(self):
        self.runs += 1
        raise RunbookError("verification failed after the change: 1 of 1 probes failed")


class PassingProbes:
    def run(self):
        return {"healthy": True}


def test_verify_probes_run_once_after_apply_and_report():
    store = {"value": 1}
    proc = Counter(FakeModule(target=3), store)
    proc.verify_probes = PassingProbes()
    result = proc.run()
    assert result["verification"] == {"healthy": True}


def test_failed_verify_probes_roll_back():
    store = {"value": 1}
    proc = Counter(FakeModule(target=3), store)
    probes = proc.verify_probes = FailingProbes()
    with pytest.raises(RunbookError, match="verification failed"):
        proc.run()
    assert probes.runs == 1
    assert store["value"] == 1 and proc.rolled_back.startswith("verification failed")


def test_verify_probes_skipped_in_check_mode_and_without_change():
    for module, store in ((FakeModule(check_mode=True, target=3), {"value": 1}), (FakeModule(target=1), {"value": 1})):
        proc = Counter(module, store)
        probes = proc.verify_probes = FailingProbes()
        assert "verification" not in proc.run()
        assert probes.runs == 0
