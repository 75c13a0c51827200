"""Run tasks through real ansible-playbook (via ansible-runner) and collect each task's result."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import ansible_runner
import yaml

ROOT = Path(__file__).resolve().parents[2]


class TaskResult(dict):
    @property
    def failed(self):
        return bool(self.get("failed"))

    @property
    def changed(self):
        return bool(self.get("changed"))


class PlaybookRun:
    def __init__(self, results, stdout, rc):
        self.results = results
        self.stdout = stdout
        self.rc = rc


def run_playbook(tasks, check=False, diff=False, extravars=None, verbosity=0, module_defaults=None,
                 ignore_errors=True, envvars=None):
    """Run ``tasks`` on localhost in one play; return a PlaybookRun with one TaskResult per task, in order.

    Each task gets ``ignore_errors`` so later tasks still run; a task skipped by ``when`` yields
    ``{"skipped": True}``.
    """
    play_tasks = []
    for i, task in enumerate(tasks):
        task = dict(task)
        task.setdefault("name", f"task {i}")
        task["name"] = f"t{i:03d} {task['name']}"
        if ignore_errors:
            task.setdefault("ignore_errors", True)
        play_tasks.append(task)
    play = {"hosts": "localhost", "gather_facts": False, "tasks": play_tasks}
    if check:
        play["check_mode"] = True
    if diff:
        play["diff"] = True
    if module_defaults:
        play["module_defaults"] = module_defaults
    with tempfile.TemporaryDirectory(prefix="ops-runbooks-run-") as tmp:
        tmp = Path(tmp)
        (tmp / "project").mkdir()
        (tmp / "project" / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
        (tmp / "inventory").mkdir()
        (tmp / "inventory" / "hosts").write_text(
            f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
        env = {
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_LOCAL_TEMP": str(tmp / "tmp"),
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            # ansible-runner drops a task's result from its event above 700 kB; the tests read whole results.
            "MAX_EVENT_RES": str(256 * 1024 * 1024),
            # The runbook_report callback (ansible.cfg) writes each run's report here, removed with the run.
            "OPS_RUNBOOKS_REPORT_DIR": str(tmp / "reports"),
        }
        env.update(envvars or {})
        runner = ansible_runner.run(
            private_data_dir=str(tmp), playbook="play.yml", extravars=extravars or {}, envvars=env,
            quiet=True, verbosity=verbosity or None, timeout=600,
        )
        by_name = {}
        for event in runner.events:
            data = event.get("event_data", {})
            kind = event.get("event")
            if kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
                res = dict(data.get("res") or {})
                if kind == "runner_on_skipped":
                    res.setdefault("skipped", True)
                if kind == "runner_on_failed":
                    res["failed"] = True
                by_name[data.get("task")] = TaskResult(res)
        stdout = runner.stdout.read()
        results = [by_name.get(t["name"], TaskResult(missing=True)) for t in play_tasks]
        return PlaybookRun(results, stdout, runner.rc)


def run_module(module, args, check=False, diff=False, **kw):
    """One module call; returns its TaskResult."""
    name = module if "." in module else f"ops.runbooks.{module}"
    return run_playbook([{name: args}], check=check, diff=diff, **kw).results[0]


def four_steps(module, args, diff=True):
    """The four-step pattern: check (predicts), apply, check (predicts nothing), apply (no change)."""
    name = module if "." in module else f"ops.runbooks.{module}"
    tasks = [
        {"name": "check 1", name: args, "check_mode": True},
        {"name": "apply 1", name: args},
        {"name": "check 2", name: args, "check_mode": True},
        {"name": "apply 2", name: args},
    ]
    return run_playbook(tasks, diff=diff).results


def dumps(obj):
    return json.dumps(obj, indent=2, default=str)


os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".collections"))
_bin = str(Path(sys.executable).parent)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")
