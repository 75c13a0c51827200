# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: restart and scale (app_restart, app_scale).

A replica is one container of a Compose service; the replica count is how many containers the service has,
which is what ``docker compose up --scale`` reconciles (Compose stores no desired count of its own).
"""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError

# Docker's own grace period when neither the user nor the service (stop_grace_period) sets one.
DEFAULT_STOP_TIMEOUT = 10


class ReplicasMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""

    def _require_declared(self, service):
        declared = self.engine.declared_services()
        if service not in declared:
            raise RunbookError(f"compose project {self.engine.project} declares no service {service!r} "
                               f"(services: {', '.join(declared) or 'none'}); check service", parameter="service")

    def replicas(self, service):
        self._require_declared(service)
        return [self.engine.describe(c) for c in self.engine.containers(service)]

    @writes
    def restart_replica(self, service, replica_id, stop_timeout=None):
        # The SDK's restart keeps the container (same id, name and volumes): Docker sends the stop signal, waits
        # up to the grace period for the process to finish its requests in flight, then starts it again.
        container = self._container(service, replica_id)
        if stop_timeout is None:
            stop_timeout = container.attrs.get("Config", {}).get("StopTimeout") or DEFAULT_STOP_TIMEOUT
        try:
            container.restart(timeout=int(round(stop_timeout)))
        except Exception as exc:  # docker.errors.APIError; the SDK is imported by the engine only
            raise RunbookError(f"{container.name}: restart failed: {exc}; check `docker logs {container.name}`",
                               replica=container.name) from None
        return container.id[:12]

    def desired_replicas(self, service):
        return len(self.replicas(service))

    @writes
    def scale(self, service, count):
        self._require_declared(service)
        # --no-recreate keeps the replicas that run; --no-deps leaves the services it depends on alone.
        self.engine.compose("up", "--detach", "--no-deps", "--no-recreate", "--scale", f"{service}={count}", service)

    def _container(self, service, replica_id):
        for container in self.engine.containers(service):
            if container.id.startswith(replica_id) or container.name == replica_id:
                return container
        raise RunbookError(f"compose service {service!r} has no replica {replica_id!r} any more; it was removed "
                           "while the runbook ran: run it again", replica=replica_id)
