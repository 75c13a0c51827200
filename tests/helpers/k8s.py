"""pytest fixtures and helpers for the Kubernetes lab (lab/k8s.py): a real control plane with kwok nodes."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote

import pytest

from lab import k8s as k8slab

# The kinds whose resourceVersion check mode must leave as it was (events are the cluster's own diary).
WATCHED = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Service": "/api/v1/namespaces/{ns}/services",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
}


@pytest.fixture(scope="session")
def k8s_lab():
    """The Kubernetes lab (built and started when it does not run); stopped at the end if this session started
    it. Tests work in namespaces of their own (``k8s_namespace``) and leave the lab's namespace alone unless they
    put it back."""
    existing = k8slab.K8sLab.load(k8slab.DEFAULT_DIR)
    started_here = existing is None or not all(existing.running().values())
    lab = k8slab.up(k8slab.DEFAULT_DIR)
    yield lab
    if started_here:
        k8slab.down(k8slab.DEFAULT_DIR)


def call(lab, method, path, body=None, ok=(200, 201)):
    status, answer = lab.api(method, path, body)
    assert status in ok, f"{method} {path} -> {status}: {answer}"
    return answer


def wait_for(predicate, timeout=90, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)


def deployment(lab, ns, name):
    return call(lab, "GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")


def rolled_out(lab, ns, name):
    d = deployment(lab, ns, name)
    s = d.get("status") or {}
    wanted = d["spec"]["replicas"]
    return (s.get("observedGeneration", 0) >= d["metadata"]["generation"] and s.get("updatedReplicas", 0) == wanted
            and s.get("replicas", 0) == wanted and s.get("availableReplicas", 0) == wanted and d)


def pods(lab, ns, selector):
    found = call(lab, "GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={quote(selector)}")["items"]
    return sorted(p["metadata"]["name"] for p in found if not p["metadata"].get("deletionTimestamp"))


def patch_template(lab, ns, name, patch):
    call(lab, "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}", {"spec": {"template": patch}})


def resource_versions(lab, ns):
    found = {}
    for kind, path in WATCHED.items():
        for item in call(lab, "GET", path.format(ns=ns))["items"]:
            found[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return found


@pytest.fixture()
def k8s_namespace(k8s_lab):
    """A namespace of its own holding the lab application (app-blue and app-green with 2 pods each behind the
    Service app, app-config, app-secrets), rolled out. Deleted after the test."""
    ns = f"t-{uuid.uuid4().hex[:8]}"
    k8slab.deploy_app(k8s_lab, ns)
    yield ns
    k8s_lab.api("DELETE", f"/api/v1/namespaces/{ns}")


def k8s_platform(lab, ns, **extra):
    settings = {"kubeconfig": str(lab.kubeconfig), "namespace": ns, "slots": {"blue": "app-blue", "green": "app-green"},
                "traffic": {"service": "app", "slot_label": "slot"}}
    settings.update(extra)
    return {"platform": "k8s", "platform_settings": settings}


def dumps(result):
    return json.dumps(result, indent=1, default=str)[:6000]
