# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes: blue/green by Service selector (traffic_switch).

Each slot is a Deployment whose pods carry the label ``<slot_label>: <slot>`` (``slot: blue``); the public
Service (``platform_settings.traffic.service``) selects the active slot's pods with that label. Switching
patches the one selector key: kube-proxy (or the cloud load balancer) moves new connections to the other pods
as their endpoints change, and connections already open stay where they are.
"""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.settings import dns_label, label_value
from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError


class TrafficMixin:
    """Uses ``self.client`` (K8sClient); write methods are marked @writes."""

    def slots(self):
        slots = self.settings.get("slots")
        if not isinstance(slots, dict) or len(slots) < 2 or not all(isinstance(v, str) for v in slots.values()):
            raise ParameterError("platform_settings.slots", "needs at least two slots as {slot name: Deployment}, "
                                                            "for example {blue: app-blue, green: app-green}")
        for slot, deployment in slots.items():
            label_value(slot, f"platform_settings.slots.{slot}")
            dns_label(deployment, f"platform_settings.slots.{slot}")
        if not self.client.settings["traffic"].get("service"):
            raise ParameterError("platform_settings.traffic.service", "required to switch traffic: the Service whose "
                                                                      "selector names the active slot")
        return dict(slots)

    def _service(self):
        name, ns = self.client.settings["traffic"]["service"], self.client.namespace
        found = self.client.call(f"reading Service {ns}/{name}", "CoreV1Api", "read_namespaced_service", name, ns,
                                 missing_ok=True)
        if found is None:
            raise RunbookError(f"namespace {ns} has no Service {name!r}; check platform_settings.traffic.service")
        return found

    def active_slot(self):
        label = self.client.settings["traffic"]["slot_label"]
        service = self._service()
        value = (service["spec"].get("selector") or {}).get(label)
        if value not in self.slots():
            raise RunbookError(f"Service {service['metadata']['name']} selects {label}={value!r}, which is not a slot "
                               f"of platform_settings.slots ({', '.join(sorted(self.slots()))}); fix one of them")
        return value

    @writes
    def switch_slot(self, slot):
        label, ns = self.client.settings["traffic"]["slot_label"], self.client.namespace
        deployment = self.client.deployment(self.slots()[slot])
        labels = (deployment["spec"]["template"].get("metadata") or {}).get("labels") or {}
        if labels.get(label) != slot:
            raise RunbookError(f"the pods of Deployment {deployment['metadata']['name']} are not labelled "
                               f"{label}={slot}, so the Service would select nothing of slot {slot}; label its pod "
                               "template first")
        service = self._service()
        old = (service["spec"].get("selector") or {}).get(label)
        self.client.call(f"patching the selector of Service {ns}/{service['metadata']['name']}", "CoreV1Api",
                         "patch_namespaced_service", service["metadata"]["name"], ns,
                         {"spec": {"selector": {label: slot}}})
        return {"service": service["metadata"]["name"], "selector": {label: slot}, "from": old, "to": slot}

    def endpoints(self):
        """The Service's endpoints from its EndpointSlices: [{ip, ready, pod}]."""
        name, ns = self.client.settings["traffic"]["service"], self.client.namespace
        slices = self.client.call(f"listing the EndpointSlices of Service {ns}/{name}", "DiscoveryV1Api",
                                  "list_namespaced_endpoint_slice", ns,
                                  label_selector=f"kubernetes.io/service-name={name}")["items"]
        return [{"ip": (e.get("addresses") or [None])[0], "ready": bool((e.get("conditions") or {}).get("ready")),
                 "pod": (e.get("targetRef") or {}).get("name")}
                for s in slices for e in s.get("endpoints") or []]

    def verify_slot(self, slot, timeout):
        """Wait until the Service's endpoints are ready pods of ``slot`` only; returns them."""
        label = self.client.settings["traffic"]["slot_label"]
        deployment = self.client.deployment(self.slots()[slot])
        selector = f"{label}={slot}"

        def served():
            pods = {p["metadata"]["name"] for p in self.client.pods(selector)}
            found = self.endpoints()
            ready = [e for e in found if e["ready"]]
            stray = [e["pod"] for e in found if e["pod"] not in pods]
            if not ready or stray:
                raise RunbookError(f"{len(ready)} ready endpoints of slot {slot}"
                                   + (f", still serving {', '.join(sorted(map(str, stray)))}" if stray else ""))
            return ready

        what = f"the Service endpoints to be ready pods of slot {slot} (Deployment {deployment['metadata']['name']})"
        try:
            ready, waited = wait_until(served, timeout, 0.5, what=what)
        except RunbookError as exc:
            raise RunbookError(f"Service {self.client.settings['traffic']['service']} does not serve slot {slot}: "
                               f"{exc.msg}", **exc.details) from None
        return {"endpoints": ready, "waited_seconds": waited}
