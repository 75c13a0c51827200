"""Check mode leaves every resourceVersion as it was; the same playbook runs unchanged on the Compose and the
Kubernetes lab inventories."""

from __future__ import annotations

import tempfile
from pathlib import Path

import ansible_runner

from tests.helpers.ansible import ROOT, run_playbook
from tests.helpers.k8s import dumps, k8s_platform, patch_template, resource_versions, rolled_out, wait_for
from tests.integration.test_k8s_housekeeping import finished_pods


def test_check_mode_leaves_every_resource_version(k8s_lab, k8s_namespace, tmp_path):
    ns = k8s_namespace
    patch_template(k8s_lab, ns, "app-blue", {"spec": {"containers": [{"name": "app", "image": "ops-runbooks/app:2"}]}})
    wait_for(lambda: rolled_out(k8s_lab, ns, "app-blue"), what="app-blue on app:2")
    finished_pods(k8s_lab, ns)
    platform = k8s_platform(k8s_lab, ns)
    tasks = [
        {"ops.runbooks.app_scale": dict(platform, service="app-green", replicas=4)},
        {"ops.runbooks.app_scale": dict(platform, service="app-green",
                                        autoscaling={"min_replicas": 3, "max_replicas": 6})},
        {"ops.runbooks.app_restart": dict(platform, service="app-blue")},
        {"ops.runbooks.traffic_switch": dict(platform, to="green")},
        {"ops.runbooks.app_rollback": dict(platform, service="app-blue", steps_back=1)},
        {"ops.runbooks.cleanup": platform},
        {"ops.runbooks.evidence_collect": dict(platform, dest=str(tmp_path / "evidence"))},
        {"ops.runbooks.k8s_state_backup": {"platform_settings": platform["platform_settings"],
                                           "dest": str(tmp_path / "backup")}},
    ]
    before = resource_versions(k8s_lab, ns)
    results = run_playbook(tasks, check=True, diff=True).results
    after = resource_versions(k8s_lab, ns)
    for task, result in zip(tasks, results, strict=True):
        assert not result.failed and result.changed, (next(iter(task)), dumps(result))
        if "ops.runbooks.app_restart" not in task:  # a restart changes no state the diff could show
            assert result["diff"]["before"] != result["diff"]["after"], (next(iter(task)), dumps(result))
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
                             if before.get(k) != after.get(k)}
    assert not (tmp_path / "evidence").exists() and not (tmp_path / "backup").exists()


def run_inventory_playbook(playbook, inventory):
    with tempfile.TemporaryDirectory(prefix="ops-runbooks-pb-") as tmp:
        env = {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(Path(tmp) / "tmp")}
        runner = ansible_runner.run(private_data_dir=tmp, playbook=str(ROOT / playbook),
                                    inventory=str(ROOT / inventory), envvars=env, quiet=True, timeout=900)
        ok = {e["event_data"]["task"]: e["event_data"].get("res") for e in runner.events
              if e.get("event") == "runner_on_ok"}
        return runner.rc, runner.stdout.read(), ok


def test_same_playbook_on_the_k8s_lab(k8s_lab):
    from lab import k8s as k8slab

    before = k8slab.K8sLab.load(k8slab.DEFAULT_DIR).api(
        "GET", f"/api/v1/namespaces/{k8slab.APP_NAMESPACE}/pods?labelSelector=slot%3Dblue")[1]["items"]
    rc, stdout, ok = run_inventory_playbook("playbooks/app-restart.yml", "inventories/lab-k8s")
    assert rc == 0, stdout[-4000:]
    restart = ok["Restart the service, verifying it serves afterwards"]
    assert restart["changed"] and restart["verification"]["healthy"], dumps(restart)
    replaced, rollout = {p["metadata"]["name"] for p in before}, restart["restarted"][0]
    assert set(rollout["replaced"]) == replaced and not replaced & set(rollout["replicas"]), dumps(rollout)
    assert ok["Check the service once more, as monitoring would"]["healthy"]


def test_same_playbook_on_the_compose_lab(compose_lab):
    rc, stdout, ok = run_inventory_playbook("playbooks/app-restart.yml", "inventories/lab")
    assert rc == 0, stdout[-4000:]
    restart = ok["Restart the service, verifying it serves afterwards"]
    assert restart["changed"] and restart["verification"]["healthy"] and len(restart["restarted"]) >= 1, dumps(restart)
    assert ok["Check the service once more, as monitoring would"]["healthy"]
