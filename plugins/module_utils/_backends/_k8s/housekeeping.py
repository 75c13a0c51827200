# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes: evidence and cleanup (evidence_collect, cleanup).

Evidence is the namespace's events, the status of its Deployments and pods, their ReplicaSet history and the
containers' logs where the kubelet serves them. Cleanup removes pods that finished (phase Failed or Succeeded):
the API keeps them until something deletes them. Images live on the nodes and are the kubelet's to collect.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json

from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.workloads import REVISION
from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.redact import REDACTED, env_secrets

FINISHED = ("Failed", "Succeeded")


def _json(data):
    return json.dumps(data, indent=2, sort_keys=True, default=str).encode()


def _parse_time(value):
    if not value:
        return None
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _scrub_env(pod):
    """A pod without the literal values of its environment variables (names and references stay)."""
    pod = copy.deepcopy(pod)
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for container in pod.get("spec", {}).get(kind) or []:
            for env in container.get("env") or []:
                if "value" in env:
                    env["value"] = REDACTED
    (pod.get("metadata") or {}).pop("managedFields", None)
    return pod


class HousekeepingMixin:
    """Uses ``self.client`` (K8sClient); write methods are marked @writes."""

    # -- evidence ---------------------------------------------------------------------------------
    def collect_evidence(self, since, services=None, deploy_history=True):
        c, ns = self.client, self.client.namespace
        if services:
            deployments = [c.deployment(s) for s in services]
        else:
            deployments = c.call(f"listing Deployments in {ns}", "AppsV1Api", "list_namespaced_deployment",
                                 ns)["items"]
        pods = [p for d in deployments for p in self._pods_of(d)] if services else c.pods()
        sources = [("events.json", lambda: self._events(since))]
        for d in deployments:
            name = d["metadata"]["name"]
            sources.append((f"deployments/{name}.json", lambda name=name: self._deployment_status(name)))
            if deploy_history:
                sources.append((f"deploy-history/{name}.json", lambda d=d: _json(
                    [{"revision": int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")),
                      "replicaset": rs["metadata"]["name"], "created": rs["metadata"].get("creationTimestamp"),
                      "images": [x.get("image") for x in rs["spec"]["template"]["spec"].get("containers") or []],
                      "replicas": (rs.get("status") or {}).get("replicas", 0)}
                     for rs in self._replica_sets(d)])))
        for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
            name = p["metadata"]["name"]
            sources.append((f"pods/{name}.json", lambda p=p: _json(_scrub_env(p))))
            for container in p["spec"].get("containers") or []:
                sources.append((f"logs/{name}/{container['name']}.log",
                                lambda name=name, cn=container["name"]: self._logs(name, cn, since)))
        return sources

    def _events(self, since):
        items = self.client.call(f"listing events in {self.client.namespace}", "CoreV1Api", "list_namespaced_event",
                                 self.client.namespace)["items"]
        recent = []
        for e in items:
            moment = _parse_time(e.get("lastTimestamp") or e.get("eventTime")
                                 or (e.get("metadata") or {}).get("creationTimestamp"))
            if moment is None or moment >= since:
                e.get("metadata", {}).pop("managedFields", None)
                recent.append(e)
        recent.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return _json(recent)

    def _deployment_status(self, name):
        d = self.client.call(f"reading Deployment {self.client.namespace}/{name}", "AppsV1Api",
                             "read_namespaced_deployment", name, self.client.namespace)
        d.get("metadata", {}).pop("managedFields", None)
        return _json({"metadata": d["metadata"], "spec": {"replicas": d["spec"].get("replicas"),
                                                          "strategy": d["spec"].get("strategy"),
                                                          "selector": d["spec"].get("selector")},
                      "status": d.get("status")})

    def _logs(self, pod, container, since):
        seconds = max(1, int((datetime.datetime.now(datetime.UTC) - since).total_seconds()))
        try:
            text = self.client.call(f"reading the logs of {pod}/{container}", "CoreV1Api", "read_namespaced_pod_log",
                                    pod, self.client.namespace, container=container, since_seconds=seconds,
                                    timestamps=True)
        except RunbookError as exc:
            # Pods on virtual nodes (kwok, virtual-kubelet) and pods whose node is gone have no kubelet to ask.
            raise RunbookError(f"logs unavailable for pod {pod} container {container}: {exc.msg}") from None
        return (text or "").encode()

    def known_secrets(self):
        """The values of the namespace's Secrets, and literal env values with secret-looking names."""
        c, ns = self.client, self.client.namespace
        found = []
        secrets = c.call(f"listing Secrets in {ns} (their values are redacted from the evidence)", "CoreV1Api",
                         "list_namespaced_secret", ns)["items"]
        for secret in secrets:
            for value in (secret.get("data") or {}).values():
                try:
                    found.append(base64.b64decode(value).decode("utf-8", "surrogateescape"))
                except ValueError:
                    continue
        for pod in c.pods():
            for container in pod["spec"].get("containers") or []:
                found += env_secrets({e["name"]: e.get("value") for e in container.get("env") or []})
        return [v for v in found if v and v.strip()]

    # -- cleanup ----------------------------------------------------------------------------------
    def cleanup_candidates(self, keep_images, scope="project"):
        c = self.client
        if scope == "all":
            pods = c.call("listing pods in every namespace", "CoreV1Api", "list_pod_for_all_namespaces")["items"]
        else:
            pods = c.pods()
        # A pod being deleted already (waiting for a finalizer) is on its way out: not a candidate.
        finished = [p for p in pods if (p.get("status") or {}).get("phase") in FINISHED
                    and not p["metadata"].get("deletionTimestamp")]
        finished.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
        return {"containers": [{"id": p["metadata"]["uid"][:12], "name": p["metadata"]["name"],
                                "namespace": p["metadata"]["namespace"],
                                "image": ((p["spec"].get("containers") or [{}])[0]).get("image"),
                                "state": p["status"]["phase"].lower(),
                                "label": f"{p['status']['phase']} pod {p['metadata']['namespace']}/"
                                         f"{p['metadata']['name']} ({p['metadata']['uid'][:12]})"}
                               for p in finished],
                "images": []}

    @writes
    def remove(self, kind, candidate):
        if kind != "container":
            raise self.unsupported("remove images (the kubelet collects them on each node)")
        ns, name = candidate["namespace"], candidate["name"]
        pod = self.client.call(f"reading pod {ns}/{name}", "CoreV1Api", "read_namespaced_pod", name, ns,
                               missing_ok=True)
        if pod is None or pod["metadata"]["uid"][:12] != candidate["id"]:
            return  # gone already, or a new pod of the same name: not the finished one cleanup listed
        # A finished pod is deleted at once (no grace period); the precondition keeps a replacement safe.
        self.client.call(f"deleting pod {ns}/{name}", "CoreV1Api", "delete_namespaced_pod", name, ns,
                         missing_ok=True, grace_period_seconds=0,
                         body={"preconditions": {"uid": pod["metadata"]["uid"]}})
