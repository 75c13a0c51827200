# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Roll a service: restart its running replicas one at a time, each waited on until healthy, so the service keeps
answering. Platform-neutral (uses ``Backend.replicas``, ``serving`` and ``restart_replica``)."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import Stopwatch, wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError


def roll(backend, service, timeout, stop_timeout=None):
    """Restart every running replica of ``service``; returns ``[{name, seconds}]``. Before a replica goes down, the
    others that served must serve again; a replica not healthy within ``timeout`` stops the roll (RunbookError)."""
    replicas = [r for r in backend.replicas(service) if r["state"] == "running"]
    if not replicas:
        raise RunbookError(f"service {service} has no running replica to restart; start it and run again",
                           service=service)
    capacity = {r["id"] for r in replicas if backend.serving(r)}
    done = []
    # Replicas that do not serve go first: restarting them costs no capacity.
    for replica in sorted(replicas, key=lambda r: (backend.serving(r), r["name"])):
        others = capacity - {replica["id"]}

        def serving_ids():
            return {r["id"] for r in backend.replicas(service) if backend.serving(r)}

        wait_until(lambda others=others: others <= serving_ids(), timeout, 0.5,
                   what=f"the other replicas of {service} to be healthy before restarting {replica['name']}")
        watch = Stopwatch()
        new_id = backend.restart_replica(service, replica["id"], stop_timeout)

        def back(replica=replica, new_id=new_id):
            now = next((r for r in backend.replicas(service) if r["id"] == new_id), None)
            fresh = now is not None and (new_id != replica["id"] or now["started_at"] != replica["started_at"])
            return fresh and backend.serving(now)

        try:
            wait_until(back, timeout, 0.5, what=f"{replica['name']} to be healthy after its restart")
        except RunbookError as exc:
            raise RunbookError(f"rolling {service} stopped: {replica['name']} is not healthy after its restart "
                               f"({exc.msg}); check its logs", failed_replica=replica["name"]) from None
        capacity = others | {new_id}
        done.append({"name": replica["name"], "seconds": watch.elapsed})
    return done
