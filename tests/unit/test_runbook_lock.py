"""runbook_lock through real ansible-playbook on localhost: state-type behaviour, contention, stale locks."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.helpers.ansible import four_steps, run_module, run_playbook


def lock(tmp_path, **kw):
    return dict(dict(name="dr-failover", owner="run-1", lock_dir=str(tmp_path)), **kw)


def test_four_steps_take(tmp_path):
    check1, apply1, check2, apply2 = four_steps("runbook_lock", lock(tmp_path, purpose="drill"))
    assert check1.changed and check1["plan"] == ["take lock dr-failover"] and check1["held"] is True
    assert apply1.changed and apply1["held"] and apply1["holder"]["owner"] == "run-1"
    assert not check2.changed and not apply2.changed
    holder = json.loads((tmp_path / "dr-failover.lock").read_text())
    assert holder["owner"] == "run-1" and holder["purpose"] == "drill"
    assert oct((tmp_path / "dr-failover.lock").stat().st_mode & 0o777) == "0o600"


def test_check_mode_takes_nothing(tmp_path):
    result = run_module("runbook_lock", lock(tmp_path), check=True)
    assert result.changed and not (tmp_path / "dr-failover.lock").exists()


def test_second_owner_is_refused_and_release_is_idempotent(tmp_path):
    results = run_playbook([
        {"ops.runbooks.runbook_lock": lock(tmp_path)},
        {"ops.runbooks.runbook_lock": lock(tmp_path, owner="run-2")},
        {"ops.runbooks.runbook_lock": lock(tmp_path, owner="run-2", state="absent")},
        {"ops.runbooks.runbook_lock": lock(tmp_path, state="absent")},
        {"ops.runbooks.runbook_lock": lock(tmp_path, state="absent")},
    ]).results
    assert results[0].changed
    assert results[1].failed and "held by 'run-1'" in results[1]["msg"]
    assert "another run is in progress" in results[1]["msg"]
    assert results[2].failed and "only its owner releases it" in results[2]["msg"]
    assert results[3].changed and not results[4].changed
    assert not (tmp_path / "dr-failover.lock").exists()


def test_stale_lock_is_taken_over(tmp_path):
    path = tmp_path / "dr-failover.lock"
    path.write_text(json.dumps({"owner": "dead-run", "acquired_at": time.time() - 7200}))
    fresh = run_module("runbook_lock", lock(tmp_path, owner="run-2"))
    assert fresh.failed and "dead-run" in fresh["msg"]  # no stale_after: never taken over
    taken = run_module("runbook_lock", lock(tmp_path, owner="run-2", stale_after="1h"))
    assert taken.changed and taken["previous_holder"]["owner"] == "dead-run"
    assert json.loads(path.read_text())["owner"] == "run-2"


@pytest.mark.parametrize("args, param", [
    (dict(name="../etc/passwd"), "name"),
    (dict(name="x; rm -rf /"), "name"),
    (dict(owner="  "), "owner"),
    (dict(stale_after="later"), "stale_after"),
    (dict(wait_timeout="-5s"), "wait_timeout"),
    (dict(state="held"), "state"),
])
def test_bad_input_names_the_parameter(tmp_path, args, param):
    result = run_module("runbook_lock", lock(tmp_path, **args))
    assert result.failed and param in result["msg"]
    assert os.listdir(tmp_path) == []
