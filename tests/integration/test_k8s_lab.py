"""The Kubernetes lab is the real thing: upstream binaries at the pinned version, answering through the
kubeconfig the inventories use, with Ready nodes that run pods."""

from __future__ import annotations

import kubernetes

from lab import k8s_build
from tests.helpers.k8s import call


def test_control_plane_is_the_pinned_upstream_release(k8s_lab):
    api = kubernetes.config.new_client_from_config(config_file=str(k8s_lab.kubeconfig))
    try:
        version = kubernetes.client.VersionApi(api).get_code()
        assert version.git_version == k8s_build.KUBERNETES_VERSION
        nodes = kubernetes.client.CoreV1Api(api).list_node().items
        assert sorted(n.metadata.name for n in nodes) == sorted(k8s_lab.nodes)
        assert all(any(c.type == "Ready" and c.status == "True" for c in n.status.conditions) for n in nodes)
    finally:
        api.close()
    # kwok renews the nodes' leases as kubelets do, so the node lifecycle controller keeps them Ready.
    leases = call(k8s_lab, "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")["items"]
    assert {lease["metadata"]["name"] for lease in leases} >= set(k8s_lab.nodes)


def test_lab_application_is_rolled_out(k8s_lab):
    pods = call(k8s_lab, "GET", "/api/v1/namespaces/ops-runbooks-lab/pods")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"
               and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])]
    # Scheduled by the real scheduler onto kwok nodes, given an address by kwok.
    assert len(running) >= 4 and all(p["spec"]["nodeName"] in k8s_lab.nodes and p["status"]["podIP"] for p in running)
