# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes: the secret store and rotation state (secret_rotate).

An entry is a key of the Secret ``platform_settings.secret_store.secret`` (the one the consumers mount); a
setting is a key of the ConfigMap ``secret_store.config_map``. A pod reads a mounted Secret's new value only
after a restart (env) or a kubelet sync (volume), which is why the procedure restarts the consumers. Staged
values (``pending``, ``prior``) are keys ``<entry>.<staged>`` of a second Secret, ``<secret>-staged``, that no
consumer mounts. Rotation state is a key ``<rotation>.json`` of the ConfigMap ``ops-runbooks-rotations``
(phases, versions, fingerprints: never a value); the lock is a Lease per rotation, taken by creating it.

Every write of an existing object carries its resourceVersion, so a concurrent writer makes it fail (409)
instead of being overwritten.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import os
import re
import socket

from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.settings import dns_label
from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

STAGES = ("pending", "prior")
ROTATIONS = "ops-runbooks-rotations"
LEASE_SECONDS = 3600


def _lease_name(rotation):
    """A valid object name for any rotation name (which may hold '_' and capitals), unique by a hash."""
    base = re.sub(r"[^a-z0-9-]+", "-", rotation.lower()).strip("-")[:30] or "rotation"
    return f"ops-runbooks-rotation-{base}-{hashlib.sha256(rotation.encode()).hexdigest()[:8]}"


class SecretStoreMixin:
    """Uses ``self.client`` (K8sClient); write methods are marked @writes."""

    def _store(self, key):
        store = self.settings.get("secret_store") or {}
        if not isinstance(store, dict) or not store.get(key):
            what = {"secret": "Secret whose keys are the entries",
                    "config_map": "ConfigMap whose keys are the settings"}
            raise ParameterError(f"platform_settings.secret_store.{key}", f"required for secret rotation on k8s: the "
                                                                          f"{what[key]} consumers read")
        return dns_label(store[key], f"platform_settings.secret_store.{key}")

    def _read_object(self, kind, name):
        method = {"Secret": "read_namespaced_secret", "ConfigMap": "read_namespaced_config_map"}[kind]
        return self.client.call(f"reading {kind} {self.client.namespace}/{name}", "CoreV1Api", method, name,
                                self.client.namespace, missing_ok=True)

    def _write_key(self, kind, name, key, value, create):
        """Set (``value`` str) or remove (None) ``key`` of object ``name``; creates the object when ``create``."""
        ns, found = self.client.namespace, self._read_object(kind, name)
        field = "data"
        encoded = None if value is None else (base64.b64encode(value.encode()).decode() if kind == "Secret" else value)
        suffix = "secret" if kind == "Secret" else "config_map"
        if found is None:
            if value is None:
                return
            if not create:
                raise RunbookError(f"namespace {ns} has no {kind} {name!r}; create it (the consumers mount it) or fix "
                                   f"platform_settings.secret_store")
            body = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "labels": {
                "app.kubernetes.io/managed-by": "ops.runbooks"}}, field: {key: encoded}}
            if kind == "Secret":
                body["type"] = "Opaque"
            self.client.call(f"creating {kind} {ns}/{name}", "CoreV1Api", f"create_namespaced_{suffix}", ns, body)
            return
        if (found.get(field) or {}).get(key) == encoded:
            return
        # A JSON merge patch with the resourceVersion read: fails (409) if someone wrote in between.
        patch = {"metadata": {"resourceVersion": found["metadata"]["resourceVersion"]}, field: {key: encoded}}
        self.client.call(f"writing key {key} of {kind} {ns}/{name}", "CoreV1Api", f"patch_namespaced_{suffix}", name,
                         ns, patch)

    def _entry(self, name, staged):
        secret = self._store("secret")
        if staged is None:
            return secret, name
        if staged not in STAGES:
            raise ValueError(f"unknown staged entry {staged!r}")
        return f"{secret}-staged", f"{name}.{staged}"

    def read_secret(self, name, staged=None):
        secret, key = self._entry(name, staged)
        found = self._read_object("Secret", secret)
        value = ((found or {}).get("data") or {}).get(key)
        return None if value is None else base64.b64decode(value).decode("utf-8", "surrogateescape").strip()

    @writes
    def write_secret(self, name, value, staged=None):
        secret, key = self._entry(name, staged)
        self._write_key("Secret", secret, key, value, create=staged is not None)

    @writes
    def remove_staged_secret(self, name, staged):
        secret, key = self._entry(name, staged)
        self._write_key("Secret", secret, key, None, create=False)

    def read_setting(self, name):
        found = self._read_object("ConfigMap", self._store("config_map"))
        value = ((found or {}).get("data") or {}).get(name)
        return None if value is None else value.strip()

    @writes
    def write_setting(self, name, value):
        self._write_key("ConfigMap", self._store("config_map"), name, f"{value}\n", create=False)

    # -- rotation state ------------------------------------------------------------------------------
    def read_rotation_state(self, name):
        found = self._read_object("ConfigMap", ROTATIONS)
        text = ((found or {}).get("data") or {}).get(f"{name}.json")
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise RunbookError(f"the rotation state {name}.json in ConfigMap {self.client.namespace}/{ROTATIONS} is "
                               f"not JSON ({exc}); remove the key only after checking by hand which credential the "
                               "consumers use") from None

    @writes
    def write_rotation_state(self, name, state):
        self._write_key("ConfigMap", ROTATIONS, f"{name}.json", json.dumps(state, indent=1, sort_keys=True),
                        create=True)

    @contextlib.contextmanager
    def rotation_lock(self, name):
        """A Lease taken by creating it; another run's create fails (409) while it holds it. A Lease left by a run
        that died is taken over once it expired (``LEASE_SECONDS``)."""
        ns, lease = self.client.namespace, _lease_name(name)
        holder = f"{socket.gethostname()}-{os.getpid()}"
        now = datetime.datetime.now(datetime.UTC)
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": lease},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": LEASE_SECONDS,
                         "acquireTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                         "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}
        existing = self.client.call(f"reading Lease {ns}/{lease}", "CoordinationV1Api", "read_namespaced_lease",
                                    lease, ns, missing_ok=True)
        if existing is not None:
            # A Lease that records no time of its own is as old as the object.
            renewed = (existing["spec"].get("renewTime") or existing["spec"].get("acquireTime")
                       or existing["metadata"].get("creationTimestamp"))
            renewed = datetime.datetime.fromisoformat(str(renewed).replace("Z", "+00:00")) if renewed else None
            duration = existing["spec"].get("leaseDurationSeconds") or LEASE_SECONDS
            if renewed is not None and (now - renewed).total_seconds() < duration:
                raise RunbookError(f"rotation {name} is running in another process (Lease {ns}/{lease} held by "
                                   f"{existing['spec'].get('holderIdentity')}); wait for it to finish")
            self.client.call(f"taking over the expired Lease {ns}/{lease}", "CoordinationV1Api",
                             "delete_namespaced_lease", lease, ns, missing_ok=True,
                             body={"preconditions": {"resourceVersion": existing["metadata"]["resourceVersion"]}})
        try:
            self.client.call(f"taking Lease {ns}/{lease}", "CoordinationV1Api", "create_namespaced_lease", ns, body)
        except RunbookError as exc:
            if exc.details.get("status") == 409:
                raise RunbookError(f"rotation {name} is running in another process (Lease {ns}/{lease}); wait for "
                                   "it to finish") from None
            raise
        try:
            yield
        finally:
            self.client.call(f"releasing Lease {ns}/{lease}", "CoordinationV1Api", "delete_namespaced_lease", lease,
                             ns, missing_ok=True)

    # -- consumers -----------------------------------------------------------------------------------
    @writes
    def restart_replica(self, service, replica_id, stop_timeout=None):
        """Delete the pod (gracefully: ``stop_timeout`` or its own grace period); its ReplicaSet creates the
        replacement, whose id is returned once it exists."""
        deployment = self.client.deployment(service)
        pods = self._pods_of(deployment)
        pod = next((p for p in pods if p["metadata"]["uid"].startswith(replica_id)
                    or p["metadata"]["name"] == replica_id), None)
        if pod is None:
            raise RunbookError(f"Deployment {service} has no pod {replica_id!r} any more; it was replaced while the "
                               "runbook ran: run it again", replica=replica_id)
        before = {p["metadata"]["uid"] for p in pods}
        kwargs = {} if stop_timeout is None else {"grace_period_seconds": int(round(stop_timeout))}
        ns, name = self.client.namespace, pod["metadata"]["name"]
        self.client.call(f"deleting pod {ns}/{name}", "CoreV1Api", "delete_namespaced_pod", name, ns,
                         missing_ok=True, body={"preconditions": {"uid": pod["metadata"]["uid"]}}, **kwargs)

        def replacement():
            fresh = [p for p in self._pods_of(deployment) if p["metadata"]["uid"] not in before
                     and not p["metadata"].get("deletionTimestamp")]
            return fresh and min(fresh, key=lambda p: p["metadata"]["name"])["metadata"]["uid"][:12]

        grace = stop_timeout if stop_timeout is not None else pod["spec"].get("terminationGracePeriodSeconds", 30)
        return wait_until(replacement, grace + 60, 0.5, what=f"the ReplicaSet to replace pod {name}")[0]

    def replica_get(self, service, port, path, timeout=10):
        """GET through the API server's pod proxy (the pods' own addresses are inside the cluster network)."""
        from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.client import ApiException

        answers = []
        for pod in self._pods_of(self.client.deployment(service)):
            if (pod.get("status") or {}).get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
                continue
            name = pod["metadata"]["name"]
            answer = {"replica": name, "status": None, "body": None}
            try:
                response = self.client.apis("CoreV1Api").connect_get_namespaced_pod_proxy_with_path(
                    f"{name}:{port}", self.client.namespace, path.lstrip("/"), _preload_content=False,
                    _request_timeout=timeout)
                answer.update(status=response.status, body=response.data.decode("utf-8", "replace"))
            except ApiException as exc:
                answer["error"] = f"{exc.status} {(exc.body or exc.reason or '').strip()[:500]}"
            except (OSError, ValueError) as exc:
                answer["error"] = f"{type(exc).__name__}: {exc}"
            answers.append(answer)
        return answers
