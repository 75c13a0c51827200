"""secret_rotate on the Kubernetes lab: the k8s secret store (keys of a Secret, staged keys in a second Secret,
rotation state in a ConfigMap, a Lease as the lock) and consumers rolled pod by pod.

kwok pods run no application, so nothing here checks that a consumer uses the new value (``consumer_check``);
what is shown is what the store and the roll do on a real API server."""

from __future__ import annotations

import base64
import json

from tests.helpers.ansible import run_module, run_playbook
from tests.helpers.k8s import call, dumps, k8s_platform, pods, resource_versions, rolled_out


def store_platform(lab, ns):
    return k8s_platform(lab, ns, secret_store={"secret": "app-secrets", "config_map": "app-config"})


def secret_data(lab, ns, name):
    found = call(lab, "GET", f"/api/v1/namespaces/{ns}/secrets/{name}", ok=(200, 404))
    return {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}


def test_app_secret_rotation_on_k8s(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    call(k8s_lab, "PATCH", f"/api/v1/namespaces/{ns}/secrets/app-secrets",
         {"stringData": {"jwt-key": "old-signing-key-0123456789", "jwt-key-previous": ""}})
    args = dict(store_platform(k8s_lab, ns), name="jwt", kind="app_secret", secret="jwt-key",
                previous_secret="jwt-key-previous", consumers=["app-blue"], roll_timeout=60)
    old_pods = pods(k8s_lab, ns, "slot=blue")
    before = resource_versions(k8s_lab, ns)
    check = run_module("ops.runbooks.secret_rotate", args, check=True)
    assert not check.failed and check.changed, dumps(check)
    assert resource_versions(k8s_lab, ns) == before, "check mode changed something"

    result = run_module("ops.runbooks.secret_rotate", args)
    assert not result.failed and result.changed, dumps(result)
    data = secret_data(k8s_lab, ns, "app-secrets")
    assert data["jwt-key"] not in ("", "old-signing-key-0123456789") and len(data["jwt-key"]) >= 32
    assert "old-signing-key-0123456789" not in json.dumps(result) and data["jwt-key"] not in json.dumps(result)
    # The consumers were rolled (every pod replaced; twice for app_secret: store, then retire) and serve.
    assert rolled_out(k8s_lab, ns, "app-blue")
    assert not set(pods(k8s_lab, ns, "slot=blue")) & set(old_pods)
    state = json.loads(call(k8s_lab, "GET", f"/api/v1/namespaces/{ns}/configmaps/ops-runbooks-rotations")
                       ["data"]["jwt.json"])
    assert state["kind"] == "app_secret" and data["jwt-key"] not in json.dumps(state)
    assert not secret_data(k8s_lab, ns, "app-secrets-staged"), "staged values are removed when the rotation ends"
    leases = call(k8s_lab, "GET", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases")["items"]
    assert not leases, "the rotation lock is released"

    again = run_module("ops.runbooks.secret_rotate", args)
    assert not again.failed and not again.changed, dumps(again)


def test_store_refuses_a_held_lock_and_missing_settings(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.secrets import _lease_name

    call(k8s_lab, "PATCH", f"/api/v1/namespaces/{ns}/secrets/app-secrets",
         {"stringData": {"jwt-key": "old-signing-key-0123456789", "jwt-key-previous": ""}})
    call(k8s_lab, "POST", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases", {
        "metadata": {"name": _lease_name("jwt")}, "spec": {"holderIdentity": "another-run",
                                                           "leaseDurationSeconds": 3600}})
    args = dict(store_platform(k8s_lab, ns), name="jwt", kind="app_secret", secret="jwt-key",
                previous_secret="jwt-key-previous", consumers=["app-blue"])
    held, missing = run_playbook([
        {"ops.runbooks.secret_rotate": args},
        {"ops.runbooks.secret_rotate": dict(args, platform_settings=k8s_platform(k8s_lab, ns)["platform_settings"])},
    ]).results
    assert held.failed and "running in another process" in held["msg"], dumps(held)
    assert secret_data(k8s_lab, ns, "app-secrets")["jwt-key"] == "old-signing-key-0123456789"
    assert missing.failed and "platform_settings.secret_store.secret" in missing["msg"], dumps(missing)
