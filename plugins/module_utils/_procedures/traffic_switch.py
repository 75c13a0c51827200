# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blue/green: send public traffic to another slot, prove it through the public endpoint, switch back if not."""

from __future__ import annotations

import re

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes import Verification, parse_targets
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    platform_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step
from ansible_collections.ops.runbooks.plugins.module_utils._procedures._app_health import problems


class TrafficSwitch(Procedure):
    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                to=dict(type="str", required=True),
                force=dict(type="bool", default=False),
                public_url=dict(type="str"),
                health_path=dict(type="str", default="/health/ready"),
                version_path=dict(type="str", default="/version"),
            )
        )
        return spec.merge(platform_argspec()).merge(verify_argspec())

    def validate(self):
        p = self.params
        self.verify_probes = Verification(p, self.module)
        for param in ("health_path", "version_path"):
            if p[param] and not p[param].startswith("/"):
                raise ParameterError(param, f"{p[param]!r} must be a path starting with '/'")
        self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))
        self.slots = self.backend.slots()
        if p["to"] not in self.slots:
            raise ParameterError("to", f"{p['to']!r} is not a slot of platform_settings.slots; choose one of "
                                       f"{', '.join(sorted(self.slots))}")
        if p["public_url"]:
            self.verify_probes.probes += parse_targets(self.public_probes(), "public_url")

    def public_probes(self):
        """After the switch the public endpoint must be healthy and, through ``version_path``, name the new slot."""
        p, base = self.params, self.params["public_url"].rstrip("/")
        probes = [{"type": "http", "name": "public health", "url": base + p["health_path"]}]
        if p["version_path"]:
            names = "|".join(re.escape(n) for n in (p["to"], self.slots[p["to"]]))
            probes.append({"type": "http", "name": f"public version names slot {p['to']}",
                           "url": base + p["version_path"], "body_regex": rf'"slot"\s*:\s*"({names})"'})
        return probes

    def observe(self):
        active = self.backend.active_slot()
        return {"active_slot": active, "service": self.slots[active]}

    def plan(self, before):
        to, service = self.params["to"], self.slots[self.params["to"]]
        if before["active_slot"] == to:
            return []
        self.target_replicas = self.backend.replicas(service)
        found = problems(self.target_replicas)
        if found and not self.params["force"]:
            raise RunbookError(f"switching traffic to {to} refused: {service} is not serving ({'; '.join(found)}); "
                               f"traffic stays on {before['active_slot']}. Fix {service}, or set force=true",
                               target_replicas=self.target_replicas)
        if found:
            self.warnings.append(f"switching to {to} although {service} is not serving: {'; '.join(found)}")
        return [Step(f"switch public traffic from {before['active_slot']} ({before['service']}) to {to} ({service}) "
                     "and reload the proxy", lambda: self.backend.switch_slot(to))]

    def verify(self, before, applied):
        active = self.backend.active_slot()
        if active != self.params["to"]:
            raise RunbookError(f"after the switch the proxy still names slot {active}, not {self.params['to']}")
        # Where the platform routes by itself (Kubernetes Service endpoints), wait until it really serves the slot.
        self.routing = self.backend.verify_slot(self.params["to"], self.verify_probes.timeout)

    def rollback(self, before, applied, error):
        if not applied:
            return []
        old = before["active_slot"]
        try:
            self.backend.switch_slot(old)
        except RunbookError as exc:
            error.msg += (f"; switching back to {old} failed too ({exc.msg}): traffic may still go to "
                          f"{self.params['to']}, switch it by hand")
            return []
        error.msg += f"; switched back: traffic is back on {old}"
        return [f"switched public traffic back to {old} ({before['service']})"]

    def project(self, before, steps):
        return {"active_slot": self.params["to"], "service": self.slots[self.params["to"]]}

    def report(self, before, after, steps):
        result = {"active_slot": after["active_slot"], "previous_slot": before["active_slot"], "slots": self.slots,
                  "target_replicas": getattr(self, "target_replicas", None)}
        if getattr(self, "routing", None) is not None:
            result["routing"] = self.routing
        return result
