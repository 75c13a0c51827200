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

    def serving_ids(self):
        return {r["id"] for r in self.backend.replicas(self.params["service"]) if self.backend.serving(r)}

    def rollback(self, before, applied, error):
        # A restart cannot be undone; what rolling back means here is not going on.
        done = {s.details["replica"] for s in applied}
        error.details["restarted"] = [s.outcome for s in applied]
        error.details["not_restarted"] = [r["name"] for r in before["replicas"]
                                          if r["state"] == "running" and r["name"] not in done
                                          and r["name"] != error.details.get("failed_replica")]
        return []

    def report(self, before, after, steps):
        names = [s.details["replica"] for s in steps]
        return {
            "service": self.params["service"],
            "restarted": [] if self.check_mode else [s.outcome for s in steps],
            "would_restart": names if self.check_mode else [],
            "replicas": after["replicas"],
        }
