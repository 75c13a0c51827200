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
    type: int
    required: true
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
