#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_scale
short_description: Set the replica count of an application service and wait until they are healthy
version_added: 0.1.0
description:
  - Sets the number of replicas of O(service) to O(replicas), then waits until exactly that many replicas exist
    and pass their health check.
  - Replicas that run are kept; scaling down removes the newest ones. A replica that exists but does not run is
    started again.
  - Idempotent; C(changed=false) when the service already has O(replicas) replicas, all running.
  - When the replicas are not healthy within O(wait_timeout), or O(verify) fails, the service is scaled back to
    its previous count and the module fails.
  - In check mode, returns the plan (from how many to how many replicas) and changes nothing.
  - On V(compose), runs C(docker compose up --detach --no-deps --no-recreate --scale SERVICE=N SERVICE). The count
    is not written to the Compose files, so a later C(docker compose up) without C(--scale) returns to the
    count they declare.
  - On V(k8s), sets C(spec.replicas) of the Deployment through its C(scale) subresource; a replica is a pod, healthy
    when it is Running and Ready.
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
      - The service to scale, such as a Compose service name (V(app_green)).
    type: str
    required: true
  replicas:
    description:
      - The number of replicas wanted, zero or more.
      - One of O(replicas) and O(autoscaling) is required; they are mutually exclusive.
    type: int
  autoscaling:
    description:
      - Let an autoscaler own the replica count instead. V(k8s) only, where it is a HorizontalPodAutoscaler
        (C(autoscaling/v2)) named like the Deployment, created when missing. The module sets its bounds and waits
        until the Deployment's replica count is within them and every replica is healthy.
      - When that does not happen within O(wait_timeout), or O(verify) fails, the autoscaler is set back to what it
        was (removed if there was none) and the module fails.
    type: dict
    suboptions:
      min_replicas:
        description: Fewest replicas, one or more.
        type: int
        required: true
      max_replicas:
        description: Most replicas, at least O(autoscaling.min_replicas).
        type: int
        required: true
      target_cpu_utilization:
        description: Average CPU utilisation (percent of the pods' CPU requests) the autoscaler aims at.
        type: int
        default: 80
  wait_timeout:
    description:
      - Seconds (or a duration such as V(90s), V(5min)) to wait until O(replicas) replicas are healthy.
    type: raw
    default: 120
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Run two replicas of the green slot
  ops.runbooks.app_scale:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    service: app_green
    replicas: 2
    wait_timeout: 3min

- name: Let the autoscaler run 2 to 10 replicas of the API at 70% CPU
  ops.runbooks.app_scale:
    platform: k8s
    platform_settings: "{{ runbook_platform_settings }}"
    service: api
    autoscaling:
      min_replicas: 2
      max_replicas: 10
      target_cpu_utilization: 70

- name: Scale the idle slot to zero
  ops.runbooks.app_scale:
    platform: "{{ runbook_platform }}"
    platform_settings: "{{ runbook_platform_settings }}"
    service: app_green
    replicas: 0
"""

RETURN = r"""
service:
  description: The service scaled.
  returned: always
  type: str
  sample: app_green
replicas_before:
  description: The replica count before the run.
  returned: always
  type: int
  sample: 1
replicas:
  description: The replica count after the run (the planned one in check mode).
  returned: always
  type: int
  sample: 2
healthy:
  description: How many replicas are healthy after the run (the planned count in check mode).
  returned: always
  type: int
  sample: 2
plan:
  description: Human-readable list of the changes, such as C(scale app_green from 1 to 2 replicas); empty when
    nothing changes.
  returned: always
  type: list
  elements: str
verification:
  description: Result of the O(verify) probes after the change (per-probe details); absent when nothing was probed.
  returned: when O(verify) is set and something changed
  type: dict
autoscaling:
  description: The autoscaler after the run (C(min_replicas), C(max_replicas), C(target_cpu_utilization)).
  returned: when O(autoscaling) is set
  type: dict
autoscaling_before:
  description: The autoscaler before the run, null when there was none.
  returned: when O(autoscaling) is set
  type: dict
rolled_back:
  description: What was undone after a failure, such as C(scaled app_green back to 1 replicas).
  returned: on failure
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.app_scale import AppScale


def main():
    run_procedure(AppScale)


if __name__ == "__main__":
    main()
