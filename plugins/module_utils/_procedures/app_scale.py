# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set the replica count (or the autoscaler's bounds) of an application service and wait until that capacity
is healthy."""

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

DEFAULT_TARGET_CPU = 80


class AppScale(Procedure):
    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                service=dict(type="str", required=True),
                replicas=dict(type="int"),
                autoscaling=dict(type="dict", options=dict(
                    min_replicas=dict(type="int", required=True),
                    max_replicas=dict(type="int", required=True),
                    target_cpu_utilization=dict(type="int", default=DEFAULT_TARGET_CPU),
                )),
                wait_timeout=dict(type="raw", default=120),
            ),
            required_one_of=[["replicas", "autoscaling"]],
            # An autoscaler owns the replica count: setting both would be undone by it.
            mutually_exclusive=[["replicas", "autoscaling"]],
        )
        return spec.merge(platform_argspec()).merge(verify_argspec())

    def validate(self):
        p = self.params
        if not p["service"].strip():
            raise ParameterError("service", "give the name of the service to scale, such as app_green")
        validate.positive(p["replicas"], "replicas", allow_zero=True)
        self.autoscaling = p["autoscaling"]
        if self.autoscaling is not None:
            a = self.autoscaling
            validate.positive(a["min_replicas"], "autoscaling.min_replicas")
            if a["max_replicas"] < a["min_replicas"]:
                raise ParameterError("autoscaling.max_replicas", f"{a['max_replicas']} is below min_replicas "
                                                                 f"{a['min_replicas']}")
            if not 1 <= a["target_cpu_utilization"] <= 100:
                raise ParameterError("autoscaling.target_cpu_utilization", "a percentage from 1 to 100, got "
                                                                           f"{a['target_cpu_utilization']}")
        self.wait_timeout = validate.positive(validate.duration_seconds(p["wait_timeout"], "wait_timeout"),
                                              "wait_timeout")
        self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))

    def observe(self):
        service = self.params["service"]
        replicas = self.backend.replicas(service)
        state = {"replicas": self.backend.desired_replicas(service),
                 "running": sum(r["state"] == "running" for r in replicas),
                 "healthy": sum(self.backend.serving(r) for r in replicas)}
        if self.autoscaling is not None:
            state["autoscaling"] = self.backend.autoscaling(service)
        return state

    def plan(self, before):
        if self.autoscaling is not None:
            return self.plan_autoscaling(before)
        service, target = self.params["service"], self.params["replicas"]
        # A stopped replica counts in the replica count but serves nothing: scaling starts it again.
        if before["replicas"] == target and before["running"] == target:
            return []
        stopped = before["replicas"] - before["running"]
        note = f" ({stopped} not running)" if stopped else ""
        return [Step(f"scale {service} from {before['replicas']}{note} to {target} replicas",
                     lambda: self.backend.scale(service, target))]

    def plan_autoscaling(self, before):
        service, wanted, now = self.params["service"], dict(self.autoscaling), before["autoscaling"]
        steps = []
        if now != wanted:
            was = "no autoscaler" if now is None else _bounds(now)
            steps.append(Step(f"set the autoscaler of {service} to {_bounds(wanted)} (was {was})",
                              lambda: self.backend.set_autoscaling(service, wanted)))
        if not steps and not (wanted["min_replicas"] <= before["replicas"] <= wanted["max_replicas"]
                              and before["healthy"] == before["replicas"]):
            # The autoscaler is as wanted but the service is not within its bounds yet: only wait for it.
            steps.append(Step(f"wait until the autoscaler brings {service} within {_bounds(wanted)}", lambda: None))
        return steps

    def reached(self, now):
        if self.autoscaling is not None:
            a = self.autoscaling
            return a["min_replicas"] <= now["replicas"] <= a["max_replicas"] and now["healthy"] == now["replicas"]
        target = self.params["replicas"]
        return now["replicas"] == target and now["healthy"] == target

    def verify(self, before, applied):
        service = self.params["service"]
        want = (f"{self.params['replicas']} healthy replicas" if self.autoscaling is None
                else f"a healthy replica count within {_bounds(self.autoscaling)}")

        def reached():
            now = self.observe()
            return self.reached(now) and now

        try:
            wait_until(reached, self.wait_timeout, 1, what=f"{want} of {service}")
        except RunbookError as exc:
            raise RunbookError(f"scaling {service}: {exc.msg}", **exc.details) from None

    def rollback(self, before, applied, error):
        service = self.params["service"]
        if self.autoscaling is not None:
            if not applied or before["autoscaling"] == self.autoscaling:
                return []
            if before["autoscaling"] is None:
                self.backend.set_autoscaling(service, None)
                return [f"removed the autoscaler of {service} again"]
            self.backend.set_autoscaling(service, before["autoscaling"])
            return [f"set the autoscaler of {service} back to {_bounds(before['autoscaling'])}"]
        # Also after a failed scale step: the platform may have created or removed some replicas before failing.
        if before["replicas"] == self.params["replicas"]:
            return []
        self.backend.scale(service, before["replicas"])
        return [f"scaled {service} back to {before['replicas']} replicas"]

    def project(self, before, steps):
        if self.autoscaling is not None:
            a = self.autoscaling
            count = min(max(before["replicas"], a["min_replicas"]), a["max_replicas"])
            return {"replicas": count, "running": count, "healthy": count, "autoscaling": dict(a)}
        target = self.params["replicas"]
        return {"replicas": target, "running": target, "healthy": target}

    def report(self, before, after, steps):
        result = {"service": self.params["service"], "replicas_before": before["replicas"],
                  "replicas": after["replicas"], "healthy": after["healthy"]}
        if self.autoscaling is not None:
            result.update(autoscaling_before=before["autoscaling"], autoscaling=after["autoscaling"])
        return result


def _bounds(a):
    return f"{a['min_replicas']}..{a['max_replicas']} replicas at {a['target_cpu_utilization']}% CPU"
