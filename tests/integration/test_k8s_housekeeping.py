"""cleanup, evidence_collect, health_check (type k8s) and k8s_state_backup on the Kubernetes lab."""

from __future__ import annotations

import base64
import json
import tarfile

from ansible_collections.ops.runbooks.plugins.module_utils._procedures.k8s_state_backup import decrypt
from tests.helpers.ansible import run_module, run_playbook
from tests.helpers.k8s import call, dumps, k8s_platform, pods, resource_versions, rolled_out, wait_for


def finished_pods(lab, ns):
    """One Succeeded pod (a Job's, completed by kwok) and one Failed pod (its phase set as a kubelet would)."""
    call(lab, "POST", f"/apis/batch/v1/namespaces/{ns}/jobs", {
        "metadata": {"name": "migrate"}, "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "migrate", "image": "ops-runbooks/app:1"}]}}}})
    call(lab, "POST", f"/api/v1/namespaces/{ns}/pods", {
        "metadata": {"name": "crashed", "labels": {"run": "crashed"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "ops-runbooks/app:1"}]}})
    wait_for(lambda: (call(lab, "GET", f"/api/v1/namespaces/{ns}/pods/crashed").get("status") or {})
             .get("phase") == "Running", what="pod crashed to run")
    call(lab, "PATCH", f"/api/v1/namespaces/{ns}/pods/crashed/status",
         {"status": {"phase": "Failed", "reason": "Error", "message": "exit 1"}})

    def settled():
        found = call(lab, "GET", f"/api/v1/namespaces/{ns}/pods")["items"]
        done = sorted(p["metadata"]["name"] for p in found if p["status"].get("phase") in ("Succeeded", "Failed")
                      and not p["metadata"].get("finalizers"))  # the Job controller has counted its pod
        job = call(lab, "GET", f"/apis/batch/v1/namespaces/{ns}/jobs/migrate").get("status") or {}
        return len(done) == 2 and job.get("completionTime") and done

    return wait_for(settled, what="a Succeeded and a Failed pod, counted by the Job controller")


def test_cleanup_four_steps_removes_finished_pods_only(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    done = finished_pods(k8s_lab, ns)
    serving = pods(k8s_lab, ns, "app=app")
    args = k8s_platform(k8s_lab, ns)
    tasks = [{"ops.runbooks.cleanup": args, "check_mode": True}, {"ops.runbooks.cleanup": args},
             {"ops.runbooks.cleanup": args, "check_mode": True}, {"ops.runbooks.cleanup": args}]
    before = resource_versions(k8s_lab, ns)
    check1 = run_playbook(tasks[:1]).results[0]
    assert resource_versions(k8s_lab, ns) == before, "check mode changed something"
    assert check1.changed and sorted(c["name"] for c in check1["would_remove"]["containers"]) == done, dumps(check1)
    assert any("Failed pod" in step for step in check1["plan"]), check1["plan"]
    apply1, check2, apply2 = run_playbook(tasks[1:]).results
    assert apply1.changed and sorted(c["name"] for c in apply1["removed"]["containers"]) == done, dumps(apply1)
    assert not check2.changed and check2["would_remove"] == {"containers": [], "images": []}, dumps(check2)
    assert not apply2.changed and apply2["removed"] == {"containers": [], "images": []}, dumps(apply2)
    remaining = {p["metadata"]["name"] for p in call(k8s_lab, "GET", f"/api/v1/namespaces/{ns}/pods")["items"]
                 if not p["metadata"].get("deletionTimestamp")}
    assert not remaining & set(done) and set(serving) <= remaining


def test_evidence_collect_without_logs_and_without_secrets(k8s_lab, k8s_namespace, tmp_path):
    ns = k8s_namespace
    secret = call(k8s_lab, "GET", f"/api/v1/namespaces/{ns}/secrets/app-secrets")["data"]
    values = [base64.b64decode(v).decode() for v in secret.values()]
    # A secret value that also shows up somewhere evidence is taken from: a literal env value of a pod.
    call(k8s_lab, "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/app-green", {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "ops-runbooks/app:1",
                        "env": [{"name": "APP_SLOT", "value": "green"}, {"name": "LEAKED", "value": values[0]}]}]}}}})
    wait_for(lambda: rolled_out(k8s_lab, ns, "app-green"), what="app-green with the leaked value")
    args = dict(k8s_platform(k8s_lab, ns), dest=str(tmp_path / "evidence"), since="1h")
    before = resource_versions(k8s_lab, ns)
    check = run_module("ops.runbooks.evidence_collect", args, check=True)
    assert check.changed and not (tmp_path / "evidence").exists(), dumps(check)
    paths = [f["path"] for f in check["files"]]
    assert "events.json" in paths and "deployments/app-blue.json" in paths and "deploy-history/app-blue.json" in paths
    assert any(p.startswith("logs/") for p in paths) and any(p.startswith("pods/") for p in paths)
    assert resource_versions(k8s_lab, ns) == before

    result = run_module("ops.runbooks.evidence_collect", args)
    assert not result.failed and result.changed, dumps(result)
    assert result["missing"] and all(p.startswith("logs/") for p in result["missing"]), dumps(result)
    assert all("logs unavailable" in why for why in result["missing"].values())
    with tarfile.open(result["path"]) as tar:
        contents = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    events = json.loads(contents["events.json"])
    assert any(e.get("reason") == "ScalingReplicaSet" for e in events), "the namespace's events are in the bundle"
    blue = json.loads(contents["deployments/app-blue.json"])
    assert blue["status"]["availableReplicas"] == 2
    for name, content in contents.items():
        for value in values:
            assert value.encode() not in content, f"secret value in {name}"
    assert b"[REDACTED]" in b"".join(contents.values())


def test_health_check_k8s_target(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    settings = k8s_platform(k8s_lab, ns)["platform_settings"]
    ok = run_module("ops.runbooks.health_check", {"targets": [
        {"type": "k8s", "service": "app-blue", "platform_settings": settings, "min_healthy": 2}]})
    assert not ok.failed and ok["healthy"] and ok["targets"][0]["detail"]["healthy"] == 2, dumps(ok)
    bad = run_module("ops.runbooks.health_check", {"timeout": 5, "targets": [
        {"type": "k8s", "service": "app-green", "platform_settings": settings, "min_healthy": 3},
        {"type": "k8s", "service": "no-such-app", "platform_settings": settings}]})
    assert bad.failed and bad["counts"]["failed"] == 2, dumps(bad)
    assert "2 of 2 pods Ready, 3 needed" in bad["targets"][0]["error"]
    assert "no Deployment 'no-such-app'" in bad["targets"][1]["error"]


def test_state_backup_four_steps_secrets_as_names(k8s_lab, k8s_namespace, tmp_path):
    ns = k8s_namespace
    dest = tmp_path / "backups"
    args = {"platform_settings": k8s_platform(k8s_lab, ns)["platform_settings"], "dest": str(dest)}
    before = resource_versions(k8s_lab, ns)
    check1, apply1, check2, apply2 = run_playbook([
        {"ops.runbooks.k8s_state_backup": args, "check_mode": True}, {"ops.runbooks.k8s_state_backup": args},
        {"ops.runbooks.k8s_state_backup": args, "check_mode": True}, {"ops.runbooks.k8s_state_backup": args},
    ]).results
    assert check1.changed and check1["counts"]["Deployment"] == 2, dumps(check1)
    assert resource_versions(k8s_lab, ns) == before
    assert apply1.changed and not check2.changed and not apply2.changed, dumps([apply1, check2, apply2])
    assert len(list(dest.glob("k8s-state-*.tar.gz"))) == 1 and apply2["path"] == apply1["path"]
    assert {"name": "app-secrets", "type": "Opaque", "keys": ["api-token", "db-password"]} in apply1["secrets"]
    with tarfile.open(apply1["path"]) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    manifest = json.loads(files["manifest.json"])
    assert manifest["fingerprint"] == apply1["fingerprint"] and manifest["secrets"] == "names"
    assert sorted(p for p in files if p.startswith("resources/Deployment/")) == [
        "resources/Deployment/app-blue.json", "resources/Deployment/app-green.json"]
    service = json.loads(files["resources/Service/app.json"])
    assert "clusterIP" not in service["spec"] and "status" not in service and "uid" not in service["metadata"]
    assert "resources/ConfigMap/app-config.json" in files and "resources/ConfigMap/kube-root-ca.crt.json" not in files
    assert not any(p.startswith("resources/ReplicaSet") for p in files)
    values = [base64.b64decode(v) for v in call(k8s_lab, "GET", f"/api/v1/namespaces/{ns}/secrets/app-secrets")
              ["data"].values()]
    assert not any(v in content for v in values for content in files.values())
    # A changed ConfigMap is a changed namespace.
    call(k8s_lab, "PATCH", f"/api/v1/namespaces/{ns}/configmaps/app-config", {"data": {"APP_LOG_LEVEL": "debug"}})
    again = run_module("ops.runbooks.k8s_state_backup", args)
    assert again.changed and again["path"] != apply1["path"], dumps(again)


def test_state_backup_encrypted_secrets(k8s_lab, k8s_namespace, tmp_path):
    ns = k8s_namespace
    passphrase = "correct horse battery staple"
    args = {"platform_settings": k8s_platform(k8s_lab, ns)["platform_settings"], "dest": str(tmp_path),
            "secrets": "encrypted", "encryption_passphrase": passphrase}
    first, second = run_playbook([{"ops.runbooks.k8s_state_backup": args},
                                  {"ops.runbooks.k8s_state_backup": args}]).results
    assert first.changed and not second.changed, dumps([first, second])
    secret = call(k8s_lab, "GET", f"/api/v1/namespaces/{ns}/secrets/app-secrets")["data"]
    with tarfile.open(first["path"]) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    raw = b"".join(files.values())
    for value in secret.values():
        assert value.encode() not in raw and base64.b64decode(value) not in raw
    restored = json.loads(decrypt(files["secrets/secrets.json.enc"], passphrase))
    assert {s["metadata"]["name"]: s["data"] for s in restored}["app-secrets"] == secret
    assert passphrase not in json.dumps(first)
