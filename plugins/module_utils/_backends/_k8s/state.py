# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes: export a namespace's objects as re-applicable manifests (k8s_state_backup).

Only what a person or a pipeline created is exported: objects with an owner (the ReplicaSets of a
Deployment, the pods of anything) are recreated by their owner, and the fields the cluster fills in (status,
uid, resourceVersion, managedFields, a Service's cluster IPs) are dropped so the manifests apply to a new
namespace or cluster. Secrets are read only to list their names and keys, or to hand their data to the caller
to encrypt; their values never leave this module otherwise.
"""

from __future__ import annotations

import base64
import copy

# kind -> (API group client, list method, apiVersion)
KINDS = {
    "ConfigMap": ("CoreV1Api", "list_namespaced_config_map", "v1"),
    "Service": ("CoreV1Api", "list_namespaced_service", "v1"),
    "ServiceAccount": ("CoreV1Api", "list_namespaced_service_account", "v1"),
    "PersistentVolumeClaim": ("CoreV1Api", "list_namespaced_persistent_volume_claim", "v1"),
    "Deployment": ("AppsV1Api", "list_namespaced_deployment", "apps/v1"),
    "StatefulSet": ("AppsV1Api", "list_namespaced_stateful_set", "apps/v1"),
    "DaemonSet": ("AppsV1Api", "list_namespaced_daemon_set", "apps/v1"),
    "CronJob": ("BatchV1Api", "list_namespaced_cron_job", "batch/v1"),
    "HorizontalPodAutoscaler": ("AutoscalingV2Api", "list_namespaced_horizontal_pod_autoscaler", "autoscaling/v2"),
    "PodDisruptionBudget": ("PolicyV1Api", "list_namespaced_pod_disruption_budget", "policy/v1"),
    "Ingress": ("NetworkingV1Api", "list_namespaced_ingress", "networking.k8s.io/v1"),
    "NetworkPolicy": ("NetworkingV1Api", "list_namespaced_network_policy", "networking.k8s.io/v1"),
    "Role": ("RbacAuthorizationV1Api", "list_namespaced_role", "rbac.authorization.k8s.io/v1"),
    "RoleBinding": ("RbacAuthorizationV1Api", "list_namespaced_role_binding", "rbac.authorization.k8s.io/v1"),
}
# Made by the control plane in every namespace; restoring them would fight it.
GENERATED = {("ConfigMap", "kube-root-ca.crt")}
_DROP_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                  "deletionTimestamp", "deletionGracePeriodSeconds")
_DROP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision")


def clean(kind, api_version, obj):
    """``obj`` as a manifest: apiVersion and kind set, cluster-filled fields dropped."""
    obj = copy.deepcopy(obj)
    obj["apiVersion"], obj["kind"] = api_version, kind
    obj.pop("status", None)
    meta = obj.setdefault("metadata", {})
    for key in _DROP_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in _DROP_ANNOTATIONS:
        annotations.pop(key, None)
    if not annotations:
        meta.pop("annotations", None)
    if kind == "Service":
        for key in ("clusterIP", "clusterIPs"):
            obj.get("spec", {}).pop(key, None)
    if kind == "PersistentVolumeClaim":
        # The binding belongs to the old cluster's volume.
        (obj.get("metadata") or {}).get("annotations", {}).pop("pv.kubernetes.io/bind-completed", None)
    return obj


def export(client, kinds):
    """{kind: [manifest, ...]} of ``kinds`` in the client's namespace, sorted by name; reads only."""
    ns, found = client.namespace, {}
    for kind in kinds:
        group, method, api_version = KINDS[kind]
        items = client.call(f"listing {kind} objects in {ns}", group, method, ns)["items"]
        found[kind] = sorted((clean(kind, api_version, o) for o in items
                              if not o["metadata"].get("ownerReferences") and (kind, o["metadata"]["name"])
                              not in GENERATED), key=lambda o: o["metadata"]["name"])
    return found


def secrets(client, with_data):
    """The namespace's Secrets (service-account tokens excepted): ``[{name, type, keys}]`` and, with
    ``with_data``, their manifests with values (the caller encrypts them)."""
    ns = client.namespace
    items = client.call(f"listing Secrets in {ns}", "CoreV1Api", "list_namespaced_secret", ns)["items"]
    items = sorted((s for s in items if s.get("type") != "kubernetes.io/service-account-token"
                    and not s["metadata"].get("ownerReferences")), key=lambda s: s["metadata"]["name"])
    listing = [{"name": s["metadata"]["name"], "type": s.get("type"),
                "keys": sorted(set(s.get("data") or {}) | set(s.get("stringData") or {}))} for s in items]
    manifests = [clean("Secret", "v1", s) for s in items] if with_data else None
    return listing, manifests


def secret_values(manifests):
    """Every decoded value of ``manifests``: what must never show in a result or a message."""
    values = []
    for s in manifests or ():
        for value in (s.get("data") or {}).values():
            try:
                values.append(base64.b64decode(value).decode("utf-8", "surrogateescape"))
            except ValueError:
                continue
    return values
