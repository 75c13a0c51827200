"""The ``command`` probe: real child processes, no shell, exit code, output pattern, timeout and cancellation."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._common import _probes as probes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

PY = sys.executable


def check(targets, timeout=10):
    return probes.check_targets(probes.parse_targets(targets, "verify", retries=0), timeout, 10)


def results(report):
    return {t["name"]: t for t in report["targets"]}


def test_exit_code_and_output_decide():
    report = check([
        {"name": "ready", "type": "command", "argv": [PY, "-c", "print('state: ready')"], "stdout_regex": "ready$"},
        {"name": "rc 3 expected", "type": "command", "argv": [PY, "-c", "raise SystemExit(3)"], "rc": 3},
        {"name": "rc 3 unexpected", "type": "command",
         "argv": [PY, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]},
        {"name": "wrong output", "type": "command", "argv": [PY, "-c", "print('starting')"], "stdout_regex": "ready"},
    ])
    by_name = results(report)
    assert by_name["ready"]["ok"] and by_name["ready"]["detail"] == {"rc": 0}
    assert by_name["rc 3 expected"]["ok"]
    assert not by_name["rc 3 unexpected"]["ok"] and by_name["rc 3 unexpected"]["reason"] == "check"
    assert "exit code 3, expected 0 (boom)" in by_name["rc 3 unexpected"]["error"]
    assert not by_name["wrong output"]["ok"] and "does not match 'ready'" in by_name["wrong output"]["error"]
    assert report["counts"]["failed"] == 2


def test_no_shell_is_involved(tmp_path):
    victim = tmp_path / "created-by-shell"
    argv = ["echo", f"$HOME; touch {victim}"]
    report = check([{"type": "command", "argv": argv, "stdout_regex": r"^\$HOME; touch "}])
    assert report["healthy"], report
    assert report["targets"][0]["name"] == f"command echo '$HOME; touch {victim}'"
    assert not victim.exists()


def _pid_gone(pid_file):
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


SLEEPER = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(300)"


def test_timeout_kills_the_process(tmp_path):
    pid_file = tmp_path / "pid"
    report = check([{"type": "command", "argv": [PY, "-c", SLEEPER, str(pid_file)], "timeout": "2s"}])
    target = report["targets"][0]
    assert not target["ok"] and target["reason"] == "check"
    assert target["error"] == "did not exit within timeout 2.0s"
    assert _pid_gone(pid_file)


def test_overall_deadline_kills_the_process(tmp_path):
    pid_file = tmp_path / "pid"
    report = check([{"type": "command", "argv": [PY, "-c", SLEEPER, str(pid_file)]}], timeout=2)
    assert report["targets"][0]["reason"] == "timeout"
    assert _pid_gone(pid_file)


@pytest.mark.parametrize("target,param", [
    ({"type": "command"}, "verify[0].argv"),
    ({"type": "command", "argv": []}, "verify[0].argv"),
    ({"type": "command", "argv": ["ls -l /"]}, "verify[0].argv"),  # a shell line is not a program
    ({"type": "command", "argv": ["/nonexistent/program"]}, "verify[0].argv"),
    ({"type": "command", "argv": ["true"], "stdout_regex": "[z-a]"}, "verify[0].stdout_regex"),
    ({"type": "command", "argv": ["true"], "timeout": "soon"}, "verify[0].timeout"),
    ({"type": "command", "argv": ["true"], "timeout": 0}, "verify[0].timeout"),
    ({"type": "command", "argv": ["true"], "url": "http://x/"}, "verify[0].url"),
])
def test_bad_fields_name_the_field(target, param):
    with pytest.raises(ParameterError) as err:
        probes.Verification({"verify": [target], "verify_timeout": 5})
    assert err.value.param == param, err.value.msg


def test_verification_runs_command_probes():
    ok = probes.Verification({"verify": [{"type": "command", "argv": ["true"]}], "verify_timeout": 5}).run()
    assert ok["healthy"] and ok["targets"][0]["type"] == "command"
    failing = probes.Verification({"verify": [{"type": "command", "argv": ["false"], "retries": 1,
                                               "retry_delay": 0}], "verify_timeout": 5})
    with pytest.raises(RunbookError, match="verification failed"):
        failing.run()
