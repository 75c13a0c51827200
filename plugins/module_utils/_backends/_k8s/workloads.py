# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes: Deployments, their pods and their ReplicaSet history (app_restart, app_scale, app_rollback,
health checks).

A service is a Deployment (``platform_settings.deployments`` maps a service name to another Deployment name); a
replica is one of its pods. A restart is a rollout restart (the pod-template annotation
``kubectl.kubernetes.io/restartedAt``, as ``kubectl rollout restart`` sets it): the Deployment controller
replaces the pods following the Deployment's own rolling-update strategy. A revision is a ReplicaSet of the
Deployment: Kubernetes keeps the history itself (``revisionHistoryLimit``).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json

from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.client import selector_string
from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH = "pod-template-hash"


def pod_state(pod):
    """A pod as a replica of ``Backend.replicas``."""
    status, meta = pod.get("status") or {}, pod["metadata"]
    phase = (status.get("phase") or "Unknown").lower()
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    state = "terminating" if meta.get("deletionTimestamp") else phase
    health = "healthy" if ready else ("starting" if phase == "pending" else "unhealthy")
    containers = pod["spec"].get("containers") or [{}]
    statuses = status.get("containerStatuses") or [{}]
    return {"id": meta["uid"][:12], "name": meta["name"], "state": state, "health": health,
            "image": containers[0].get("image"), "image_id": statuses[0].get("imageID") or None,
            "started_at": status.get("startTime"), "node": pod["spec"].get("nodeName"),
            "ip": status.get("podIP")}


def template_id(template):
    """A revision id: the fingerprint of a pod template without the label the controller adds to it."""
    template = copy.deepcopy(template)
    (template.get("metadata") or {}).get("labels", {}).pop(TEMPLATE_HASH, None)
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:12]


def rollout_status(deployment):
    """``(complete, message)`` the way ``kubectl rollout status`` decides it."""
    spec, status, meta = deployment["spec"], deployment.get("status") or {}, deployment["metadata"]
    name, wanted = meta["name"], spec.get("replicas", 1)
    for c in status.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return False, f"Deployment {name} exceeded its progress deadline: {c.get('message')}"
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False, f"Deployment {name}: the controller has not seen generation {meta.get('generation')} yet"
    updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < wanted:
        return False, f"{updated} of {wanted} new replicas of {name} updated"
    if total > updated:
        return False, f"{total - updated} old replicas of {name} pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas of {name} available"
    return True, f"Deployment {name} rolled out: {available} of {wanted} replicas available"


class WorkloadsMixin:
    """Uses ``self.client`` (K8sClient); write methods are marked @writes."""

    rollouts = True

    # -- replicas -------------------------------------------------------------------------------
    def _pods_of(self, deployment):
        pods = self.client.pods(selector_string(deployment["spec"]["selector"]))
        # Only pods of this Deployment's ReplicaSets: another workload may share its labels.
        sets = {rs["metadata"]["name"] for rs in self._replica_sets(deployment)}
        return [p for p in pods if any(o.get("kind") == "ReplicaSet" and o.get("name") in sets
                                       for o in p["metadata"].get("ownerReferences") or [])]

    def replicas(self, service):
        deployment = self.client.deployment(service)
        return sorted((pod_state(p) for p in self._pods_of(deployment)), key=lambda r: r["name"])

    def desired_replicas(self, service):
        return self.client.deployment(service)["spec"].get("replicas", 1)

    @writes
    def scale(self, service, count):
        name = self.client.deployment_name(service)
        self.client.call(f"scaling Deployment {self.client.namespace}/{name} to {count}", "AppsV1Api",
                         "patch_namespaced_deployment_scale", name, self.client.namespace,
                         {"spec": {"replicas": count}})

    # -- rollout restart --------------------------------------------------------------------------
    def rollout_status(self, service):
        return rollout_status(self.client.deployment(service))

    @writes
    def restart_rollout(self, service):
        """Start a rollout restart; returns what ``undo_restart`` needs to return to the template before."""
        deployment = self.client.deployment(service)
        annotations = (deployment["spec"]["template"].get("metadata") or {}).get("annotations") or {}
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._patch_template_annotation(service, stamp)
        return {"previous": annotations.get(RESTARTED_AT), "restarted_at": stamp}

    @writes
    def undo_restart(self, service, token):
        """Put the restart annotation back as it was: the template is the previous revision's again, so the
        Deployment controller scales its ReplicaSet back up and the new one down."""
        self._patch_template_annotation(service, token["previous"])

    def _patch_template_annotation(self, service, value):
        name = self.client.deployment_name(service)
        # A JSON merge patch: null removes the annotation.
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: value}}}}}
        self.client.call(f"patching Deployment {self.client.namespace}/{name}", "AppsV1Api",
                         "patch_namespaced_deployment", name, self.client.namespace, body)

    # -- autoscaling (app_scale) ----------------------------------------------------------------
    def autoscaling(self, service):
        name = self.client.deployment_name(service)
        found = self.client.call(f"reading HorizontalPodAutoscaler {self.client.namespace}/{name}",
                                 "AutoscalingV2Api", "read_namespaced_horizontal_pod_autoscaler", name,
                                 self.client.namespace, missing_ok=True)
        if found is None:
            return None
        target = None
        for metric in found["spec"].get("metrics") or []:
            resource = metric.get("resource") or {}
            if metric.get("type") == "Resource" and resource.get("name") == "cpu":
                target = (resource.get("target") or {}).get("averageUtilization")
        return {"min_replicas": found["spec"].get("minReplicas", 1), "max_replicas": found["spec"]["maxReplicas"],
                "target_cpu_utilization": target}

    @writes
    def set_autoscaling(self, service, wanted):
        """Create or update the HorizontalPodAutoscaler (autoscaling/v2) of the Deployment; ``wanted`` None
        deletes it."""
        deployment = self.client.deployment(service)
        name = deployment["metadata"]["name"]
        if wanted is None:
            self.client.call(f"deleting HorizontalPodAutoscaler {self.client.namespace}/{name}", "AutoscalingV2Api",
                             "delete_namespaced_horizontal_pod_autoscaler", name, self.client.namespace,
                             missing_ok=True)
            return
        body = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, "namespace": self.client.namespace},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                         "minReplicas": wanted["min_replicas"], "maxReplicas": wanted["max_replicas"],
                         "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                             "type": "Utilization", "averageUtilization": wanted["target_cpu_utilization"]}}}]}}
        what = f"HorizontalPodAutoscaler {self.client.namespace}/{name}"
        if self.autoscaling(service) is None:
            self.client.call(f"creating {what}", "AutoscalingV2Api", "create_namespaced_horizontal_pod_autoscaler",
                             self.client.namespace, body)
        else:
            self.client.call(f"updating {what}", "AutoscalingV2Api", "patch_namespaced_horizontal_pod_autoscaler",
                             name, self.client.namespace, body)

    # -- revisions (app_rollback) -----------------------------------------------------------------
    def revision_vars(self, service):
        return []  # the ReplicaSet holds the whole pod template: nothing to name

    def _replica_sets(self, deployment):
        uid = deployment["metadata"]["uid"]
        found = self.client.call(f"listing ReplicaSets in {self.client.namespace}", "AppsV1Api",
                                 "list_namespaced_replica_set", self.client.namespace,
                                 label_selector=selector_string(deployment["spec"]["selector"]))["items"]
        return [rs for rs in found if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])]

    @staticmethod
    def _revision(rs):
        template = rs["spec"]["template"]
        containers = template["spec"].get("containers") or [{}]
        number = int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
        return {"id": template_id(template), "image": containers[0].get("image"), "image_id": None,
                "config": {"images": {c["name"]: c.get("image") for c in containers}, "revision": number,
                           "replicaset": rs["metadata"]["name"]},
                "recorded_at": rs["metadata"].get("creationTimestamp"), "number": number}

    def current_revision(self, service):
        deployment = self.client.deployment(service)
        template = deployment["spec"]["template"]
        current = template_id(template)
        for rs in self._replica_sets(deployment):
            revision = self._revision(rs)
            if revision["id"] == current:
                return dict(revision, recorded_at=None)
        containers = template["spec"].get("containers") or [{}]
        # Between an update and the controller creating its ReplicaSet.
        return {"id": current, "image": containers[0].get("image"), "image_id": None,
                "config": {"images": {c["name"]: c.get("image") for c in containers}, "revision": None,
                           "replicaset": None}, "recorded_at": None, "number": None}

    def revision_history(self, service):
        deployment = self.client.deployment(service)
        return sorted((self._revision(rs) for rs in self._replica_sets(deployment)), key=lambda r: -r["number"])

    def record_revision(self, service, revision):
        return False  # Kubernetes records every revision itself

    def require_deployable(self, service, revision):
        if not any(r["id"] == revision["id"] for r in self.revision_history(service)):
            raise RunbookError(f"revision {revision['id']} of {service} is no longer in its ReplicaSet history "
                               "(revisionHistoryLimit); pick another revision", revision=revision["id"])

    @writes
    def deploy_revision(self, service, revision):
        deployment = self.client.deployment(service)
        for rs in self._replica_sets(deployment):
            if template_id(rs["spec"]["template"]) == revision["id"]:
                break
        else:
            raise RunbookError(f"revision {revision['id']} of {service} is no longer in its ReplicaSet history")
        template = copy.deepcopy(rs["spec"]["template"])
        template["metadata"].get("labels", {}).pop(TEMPLATE_HASH, None)
        name = deployment["metadata"]["name"]
        # What `kubectl rollout undo` does: the Deployment's template becomes the ReplicaSet's, and the
        # controller scales that ReplicaSet up again. A JSON patch replaces the template whole (a merge patch
        # would keep annotations and fields the old template lacks).
        self.client.call(f"deploying revision {revision['id']} of Deployment {self.client.namespace}/{name}",
                         "AppsV1Api", "patch_namespaced_deployment", name, self.client.namespace,
                         [{"op": "replace", "path": "/spec/template", "value": template}])
        return {"replicaset": rs["metadata"]["name"], "revision": revision.get("number")}
