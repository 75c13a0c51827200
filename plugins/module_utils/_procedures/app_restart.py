# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling restart of an application service: one replica at a time, each waited on until healthy."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    platform_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import Stopwatch, wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step
from ansible_collections.ops.runbooks.plugins.module_utils._procedures._app_health import wait_rollout


class AppRestart(Procedure):
    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                service=dict(type="str", required=True),
                replica_timeout=dict(type="raw", default=120),
                stop_timeout=dict(type="raw"),
            )
        )
        return spec.merge(platform_argspec()).merge(verify_argspec())

    def validate(self):
        p = self.params
        if not p["service"].strip():
            raise ParameterError("service", "give the name of the service to restart, such as app_blue")
        timeout = validate.duration_seconds(p["replica_timeout"], "replica_timeout")
        self.replica_timeout = validate.positive(timeout, "replica_timeout")
        self.stop_timeout = validate.duration_seconds(p["stop_timeout"], "stop_timeout")
        self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))

    def observe(self):
        return {"replicas": self.backend.replicas(self.params["service"])}

    def plan(self, before):
        running = [r for r in before["replicas"] if r["state"] == "running"]
        stopped = [r["name"] for r in before["replicas"] if r["state"] != "running"]
        if stopped:
            self.warnings.append(f"not restarting replicas that do not run: {', '.join(stopped)}")
        if self.backend.rollouts:
            return self.plan_rollout(running)
        # The capacity to keep: replicas serving now. Replicas that do not serve go first, as restarting them
        # costs nothing.
        self.capacity = {r["id"] for r in running if self.backend.serving(r)}
        order = sorted(running, key=lambda r: (self.backend.serving(r), r["name"]))
        return [Step(f"restart {r['name']} ({r['id']})", lambda r=r: self.restart(r), replica=r["name"])
                for r in order]

    def restart(self, replica):
        service, name = self.params["service"], replica["name"]
        others = self.capacity - {replica["id"]}
        # Before a replica goes down, every other replica that served before the run must serve again, so the
        # service never drops below its starting capacity minus one.
        _ready, waited = wait_until(lambda: others <= self.serving_ids(), self.replica_timeout, 0.5,
                                    what=f"the other replicas of {service} to be healthy before restarting {name}")
        watch = Stopwatch()
        new_id = self.backend.restart_replica(service, replica["id"], self.stop_timeout)
        restart_seconds = watch.elapsed

        def back():
            now = next((r for r in self.backend.replicas(service) if r["id"] == new_id), None)
            # Same id: the restart is only seen once it started again (its health check is then reset too).
            fresh = now is not None and (new_id != replica["id"] or now["started_at"] != replica["started_at"])
            return fresh and self.backend.serving(now) and now

        try:
            wait_until(back, self.replica_timeout, 0.5, what=f"{name} to be healthy after its restart")
        except RunbookError as exc:
            raise RunbookError(f"rolling restart of {service} stopped: {name} was restarted but is not healthy "
                               f"within replica_timeout {self.replica_timeout:g}s ({exc.msg}); the replicas after "
                               f"it were not restarted; check {name}'s logs", failed_replica=name) from None
        self.capacity = others | {new_id}
        return {"name": name, "id": replica["id"], "new_id": new_id, "waited_for_others_seconds": waited,
                "restart_seconds": restart_seconds, "healthy_after_seconds": watch.elapsed}

    def plan_rollout(self, running):
        """On a platform with its own rolling update, one rollout replaces every replica under the platform's
        availability rules (maxUnavailable/maxSurge), and is undone when it does not complete."""
        if not running:
            return []
        service, names = self.params["service"], [r["name"] for r in running]
        self.rollout_token = None
        return [Step(f"rollout restart {service}: replace its {len(names)} running replicas ({', '.join(names)}) "
                     "by a rolling update and wait until the rollout completes", lambda: self.rollout(running),
                     replica=service)]

    def rollout(self, running):
        service = self.params["service"]
        # replica_timeout bounds each replica's replacement; the rollout replaces them all.
        self.rollout_timeout = timeout = self.replica_timeout * max(1, len(running))
        watch = Stopwatch()
        self.rollout_token = self.backend.restart_rollout(service)
        try:
            wait_rollout(self.backend, service, timeout)
        except RunbookError as exc:
            raise RunbookError(f"rollout restart of {service} did not complete within {timeout:g}s (replica_timeout "
                               f"{self.replica_timeout:g}s x {max(1, len(running))} replicas): {exc.msg}",
                               failed_replica=service) from None
        new = [r for r in self.backend.replicas(service) if r["state"] == "running"]
        return {"name": service, "rollout": self.rollout_token, "replaced": [r["name"] for r in running],
                "replicas": [r["name"] for r in new], "rollout_seconds": watch.elapsed}

    def rollback_rollout(self, error):
        service = self.params["service"]
        self.backend.undo_restart(service, self.rollout_token)
        try:
            wait_rollout(self.backend, service, self.rollout_timeout)
        except RunbookError as exc:
            error.msg += f"; undoing the restart did not complete either ({exc.msg}): fix {service} by hand"
            return [f"undid the rollout restart of {service} (not complete)"]
        error.msg += f"; the restart was undone: {service} is back on its previous revision"
        return [f"undid the rollout restart of {service}: back on its previous revision"]

    def serving_ids(self):
        return {r["id"] for r in self.backend.replicas(self.params["service"]) if self.backend.serving(r)}

    def rollback(self, before, applied, error):
        if self.backend.rollouts:
            return self.rollback_rollout(error) if getattr(self, "rollout_token", None) is not None else []
        # A restart cannot be undone; what rolling back means here is not going on.
        done = {s.details["replica"] for s in applied}
        error.details["restarted"] = [s.outcome for s in applied]
        error.details["not_restarted"] = [r["name"] for r in before["replicas"]
                                          if r["state"] == "running" and r["name"] not in done
                                          and r["name"] != error.details.get("failed_replica")]
        return []

    def report(self, before, after, steps):
        names = [s.details["replica"] for s in steps]
        if self.backend.rollouts:
            names = [r["name"] for r in before["replicas"] if r["state"] == "running"] if steps else []
        return {
            "service": self.params["service"],
            "restarted": [] if self.check_mode else [s.outcome for s in steps],
            "would_restart": names if self.check_mode else [],
            "replicas": after["replicas"],
        }
