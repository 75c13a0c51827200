#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_restart
short_description: Rolling restart of an application service, one replica at a time
version_added: 0.1.0
description:
  - Restarts the running replicas of O(service) one at a time. Each replica is stopped gracefully (it gets the
    stop signal and up to O(stop_timeout) to finish the requests in flight), started again, and waited on until
    its health check passes before the next one is touched.
  - Before a replica goes down, every other replica that was healthy when the module started must be healthy
    again, so the service never has less than its starting capacity minus one replica.
  - Replicas that are not healthy are restarted first; replicas that do not run are left alone (with a warning).
  - When a restarted replica does not become healthy within O(replica_timeout), the rolling restart stops there
    and the module fails naming the replica (C(failed_replica)); the replicas after it are not restarted
    (C(not_restarted)). A restart cannot be undone, so nothing is rolled back.
  - This is an action, not a state; it reports C(changed=true) whenever it restarted at least one replica, and
    C(changed=false) only when the service has no running replica.
  - In check mode, lists the replicas it would restart, in order, and restarts nothing.
  - On V(compose), a replica is a container of the Compose service, restarted in place (same container) with the
    Docker API. A proxy in front that resolves the service name per request (nginx with C(resolver) and a
    variable in C(proxy_pass)) sends requests to the other replicas while one restarts; it must retry the next
    address when a connection is refused (nginx's default C(proxy_next_upstream error timeout)).
  - On V(k8s), the Deployment is restarted as one rollout, as C(kubectl rollout restart) does (it sets the
    pod-template annotation C(kubectl.kubernetes.io/restartedAt)); the Deployment controller replaces the pods
    under its own C(maxUnavailable)/C(maxSurge) rules, and the module waits (O(replica_timeout) per running
    replica) until the rollout is complete. When it is not, or O(verify) fails, the annotation is put back, which
    returns the Deployment to its previous revision, and the module fails.
extends_documentation_fragment:
  - ops.runbooks.platform
  - ops.runbooks.verify
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  service:
    description:
      - The service to restart, such as a Compose service name (V(app_blue)).
    type: str
    required: true
  replica_timeout:
    description:
      - Seconds (or a duration such as V(90s), V(5min)) to wait for each replica, both for the other replicas to be
        healthy before it is restarted and for it to be healthy after its restart.
    type: raw
    default: 120
  stop_timeout:
    description:
      - Seconds a replica gets to finish its requests in flight after the stop signal, before it is killed.
      - Defaults to the service's own grace period (Compose C(stop_grace_period)), or 10 seconds.
    type: raw
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Restart the blue slot, one replica at a time
  ops.runbooks.app_restart:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    service: app_blue
    replica_timeout: 2min

- name: Restart and prove the public endpoint still answers
  ops.runbooks.app_restart:
    platform: "{{ runbook_platform }}"
    platform_settings: "{{ runbook_platform_settings }}"
    service: app_blue
    verify:
      - type: http
        url: "{{ runbook_public_url }}/health/ready"
"""

RETURN = r"""
service:
  description: The service restarted.
  returned: always
  type: str
  sample: app_blue
restarted:
  description: The replicas restarted, in order, with their timings (empty in check mode).
  returned: always
  type: list
  elements: dict
  sample:
    - name: ops-runbooks-lab-app_blue-1
      id: 3f1c2a9b8d7e
      new_id: 3f1c2a9b8d7e
      waited_for_others_seconds: 0.01
      restart_seconds: 0.61
      healthy_after_seconds: 2.74
would_restart:
  description: Names of the replicas that would be restarted, in order (check mode only, otherwise empty).
  returned: always
  type: list
  elements: str
replicas:
  description: The replicas after the run (before it in check mode) with C(id), C(name), C(state), C(health),
    C(image) and C(started_at).
  returned: always
  type: list
  elements: dict
plan:
  description: Human-readable list of the restarts, one per replica.
  returned: always
  type: list
  elements: str
verification:
  description: Result of the O(verify) probes after the restart (per-probe details); absent when nothing was probed.
  returned: when O(verify) is set and something changed
  type: dict
failed_replica:
  description: The replica that did not become healthy after its restart.
  returned: on failure
  type: str
not_restarted:
  description: Running replicas left alone because the rolling restart stopped.
  returned: on failure
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.app_restart import AppRestart


def main():
    run_procedure(AppRestart)


if __name__ == "__main__":
    main()
