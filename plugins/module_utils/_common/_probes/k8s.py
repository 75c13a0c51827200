# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes Deployment probe: the Deployment is Available and at least ``min_healthy`` of its pods are Ready.

It asks the platform backend (``replicas()``) like the Compose probe, plus the Deployment's own Available
condition, so what it checks is what the app modules wait for.
"""

from __future__ import annotations

import asyncio

from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.settings import dns_label, k8s_settings
from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend, select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import Probe, ProbeFailed
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError
from ansible_collections.ops.runbooks.plugins.module_utils._common.validate import positive


class K8sDeploymentProbe(Probe):
    type = "k8s"
    options = dict(service=dict(type="str"), platform_settings=dict(type="dict"), min_healthy=dict(type="int"))
    defaults = dict(min_healthy=1)
    required = ("service", "platform_settings")

    def validate(self):
        positive(self.fields["min_healthy"], self.param("min_healthy"))
        try:
            k8s_settings(self.fields["platform_settings"])
            deployment = (self.fields["platform_settings"].get("deployments") or {}).get(self.fields["service"])
            if deployment is None:
                dns_label(self.fields["service"], "service")
        except ParameterError as exc:  # named as this target's field, such as verify[0].platform_settings.namespace
            raise ParameterError(self.param(exc.param), exc.msg[len(exc.param) + 2:]) from None

    @property
    def address(self):
        return f"{self.fields['platform_settings'].get('namespace') or 'default'}/{self.fields['service']}"

    def default_name(self):
        return f"{self.type} {self.address}"

    def observe(self):
        backend = select_backend(self.type, self.fields["platform_settings"], check_mode=True)
        try:
            deployment = backend.client.deployment(self.fields["service"])
            return deployment, backend.replicas(self.fields["service"])
        finally:
            backend.close()

    async def check(self):
        # The Kubernetes client blocks: in a thread, so the other targets go on meanwhile.
        deployment, replicas = await asyncio.to_thread(self.observe)
        conditions = {c["type"]: c for c in (deployment.get("status") or {}).get("conditions") or []}
        available = (conditions.get("Available") or {}).get("status") == "True"
        ready = [r["name"] for r in replicas if Backend.serving(r)]
        detail = {"available": available, "healthy": len(ready), "total": len(replicas),
                  "replicas": {r["name"]: r["health"] if r["state"] == "running" else r["state"] for r in replicas}}
        if not available:
            reason = (conditions.get("Available") or {}).get("message") or "no Available condition yet"
            raise ProbeFailed(f"Deployment {deployment['metadata']['name']} is not Available: {reason}", **detail)
        if len(ready) < self.fields["min_healthy"]:
            raise ProbeFailed(f"{len(ready)} of {len(replicas)} pods Ready, {self.fields['min_healthy']} needed",
                              **detail)
        return detail
