# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose service probe: at least ``min_healthy`` replicas of a service run and pass their health check.

It asks the platform backend (``replicas()``), not Docker, so a probe for another platform's services is this
class with another ``type``.
"""

from __future__ import annotations

import asyncio

from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.engine import compose_settings
from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend, select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import Probe, ProbeFailed
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError
from ansible_collections.ops.runbooks.plugins.module_utils._common.validate import positive


class ComposeServiceProbe(Probe):
    type = "compose"
    options = dict(service=dict(type="str"), platform_settings=dict(type="dict"), min_healthy=dict(type="int"))
    defaults = dict(min_healthy=1)
    required = ("service", "platform_settings")

    def validate(self):
        positive(self.fields["min_healthy"], self.param("min_healthy"))
        try:
            compose_settings(self.fields["platform_settings"])
        except ParameterError as exc:  # named as this target's field, such as verify[0].platform_settings.project_dir
            raise ParameterError(self.param(exc.param), exc.msg[len(exc.param) + 2:]) from None

    @property
    def address(self):
        return f"{self.fields['platform_settings'].get('project_name')}/{self.fields['service']}"

    def default_name(self):
        return f"{self.type} {self.fields['service']}"

    def replicas(self):
        backend = select_backend(self.type, self.fields["platform_settings"], check_mode=True)
        try:
            return backend.replicas(self.fields["service"])
        finally:
            backend.close()

    async def check(self):
        # The Docker SDK blocks: in a thread, so the other targets go on meanwhile.
        replicas = await asyncio.to_thread(self.replicas)
        healthy = [r["name"] for r in replicas if Backend.serving(r)]
        detail = {"healthy": len(healthy), "total": len(replicas),
                  "replicas": {r["name"]: r["health"] or r["state"] for r in replicas}}
        if len(healthy) < self.fields["min_healthy"]:
            raise ProbeFailed(f"{len(healthy)} of {len(replicas)} replicas healthy, {self.fields['min_healthy']} "
                              "needed", **detail)
        return detail
