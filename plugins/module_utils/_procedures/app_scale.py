# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set the replica count of an application service and wait until that many replicas are healthy."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    platform_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step


class AppScale(Procedure):
    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                service=dict(type="str", required=True),
                replicas=dict(type="int", required=True),
                wait_timeout=dict(type="raw", default=120),
            )
        )
        return spec.merge(platform_argspec()).merge(verify_argspec())

    def validate(self):
        p = self.params
        if not p["service"].strip():
            raise ParameterError("service", "give the name of the service to scale, such as app_green")
        validate.positive(p["replicas"], "replicas", allow_zero=True)
        self.wait_timeout = validate.positive(validate.duration_seconds(p["wait_timeout"], "wait_timeout"),
                                              "wait_timeout")
        self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))

    def observe(self):
        service = self.params["service"]
        replicas = self.backend.replicas(service)
        return {"replicas": self.backend.desired_replicas(service),
                "running": sum(r["state"] == "running" for r in replicas),
                "healthy": sum(self.backend.serving(r) for r in replicas)}

    def plan(self, before):
        service, target = self.params["service"], self.params["replicas"]
        # A stopped replica counts in the replica count but serves nothing: scaling starts it again.
        if before["replicas"] == target and before["running"] == target:
            return []
        stopped = before["replicas"] - before["running"]
        note = f" ({stopped} not running)" if stopped else ""
        return [Step(f"scale {service} from {before['replicas']}{note} to {target} replicas",
                     lambda: self.backend.scale(service, target))]

    def verify(self, before, applied):
        target = self.params["replicas"]

        def reached():
            now = self.observe()
            return now["replicas"] == target and now["healthy"] == target and now

        try:
            wait_until(reached, self.wait_timeout, 1,
                       what=f"{target} healthy replicas of {self.params['service']}")
        except RunbookError as exc:
            raise RunbookError(f"scaling {self.params['service']} to {target} replicas: {exc.msg}",
                               **exc.details) from None

    def rollback(self, before, applied, error):
        # Also after a failed scale step: Compose may have created or removed some replicas before failing.
        if before["replicas"] == self.params["replicas"]:
            return []
        self.backend.scale(self.params["service"], before["replicas"])
        return [f"scaled {self.params['service']} back to {before['replicas']} replicas"]

    def project(self, before, steps):
        target = self.params["replicas"]
        return {"replicas": target, "running": target, "healthy": target}

    def report(self, before, after, steps):
        return {"service": self.params["service"], "replicas_before": before["replicas"],
                "replicas": after["replicas"], "healthy": after["healthy"]}
