#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic_switch
short_description: Send public traffic to another blue/green slot, verify it, switch back when it fails
version_added: 0.1.0
description:
  - Points the proxy at the slot O(to) and reloads it gracefully (requests in flight are finished, no connection is
    dropped), then proves the switch (the proxy names the new slot, the O(verify) probes pass and, with
    O(public_url), the public endpoint is healthy and reports the new slot).
  - When any of that fails, traffic is switched back to the previous slot and the module fails with a message saying
    which slot has the traffic.
  - Before switching, every replica of the target slot must be running and healthy; otherwise the module refuses
    unless O(force=true).
  - Nothing changes when O(to) already has the traffic.
  - On V(compose), the slots are C(platform_settings.slots); the module rewrites the line C(set $active_slot
    <service>;) of C(platform_settings.proxy.active_slot_file) atomically (same mode) and runs
    C(platform_settings.proxy.reload_command) (default C(nginx -s reload)) in the C(platform_settings.proxy.service)
    containers.
  - In check mode, reports the planned switch (from which slot to which) and changes nothing.
  - On V(k8s), a slot is a Deployment whose pods carry the label C(slot=<slot name>) (the label name is
    C(platform_settings.traffic.slot_label)); the switch patches that key of the selector of the Service
    C(platform_settings.traffic.service). The switch is verified by the Service's EndpointSlices; within
    O(verify_timeout), every endpoint must be a Ready pod of the new slot, or traffic is switched back.
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
  to:
    description:
      - The slot that should receive public traffic, one of the names in C(platform_settings.slots) (checked before
        anything is contacted).
    type: str
    required: true
  force:
    description:
      - Switch even when the target slot's replicas are not all running and healthy (a warning is returned).
      - Verification still runs and still switches back when it fails.
    type: bool
    default: false
  public_url:
    description:
      - Base URL of the public endpoint, such as V(https://shop.example.com). When set, after the switch
        O(public_url) + O(health_path) must answer 200 and O(public_url) + O(version_path) must answer with a JSON
        body whose C(slot) is the new slot (its name or its service), both within O(verify_timeout).
    type: str
  health_path:
    description:
      - Path of the health page under O(public_url).
    type: str
    default: /health/ready
  version_path:
    description:
      - Path under O(public_url) whose JSON answer names the serving slot in C(slot). Empty to skip that check.
    type: str
    default: /version
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Send traffic to green and prove it through the public endpoint
  ops.runbooks.traffic_switch:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    to: green
    public_url: "{{ runbook_public_url }}"
    verify_timeout: 30s

- name: Switch back to blue, checking one more page
  ops.runbooks.traffic_switch:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    to: blue
    verify:
      - type: http
        url: "{{ runbook_public_url }}/items/1"
"""

RETURN = r"""
active_slot:
  description: The slot with the public traffic after the run (in check mode, the one it would have).
  returned: always
  type: str
  sample: green
previous_slot:
  description: The slot that had the traffic before the run.
  returned: always
  type: str
  sample: blue
slots:
  description: The slots, as slot name -> service.
  returned: always
  type: dict
  sample: {blue: app_blue, green: app_green}
target_replicas:
  description: The target slot's replicas as seen before the switch; null when no switch was needed.
  returned: always
  type: list
  elements: dict
verification:
  description: Result of the O(verify) and O(public_url) probes after the switch (per-probe details).
  returned: when something changed and there were probes
  type: dict
plan:
  description: What was done (or would be done in check mode); empty when O(to) already had the traffic.
  returned: always
  type: list
  elements: str
  sample: ["switch public traffic from blue (app_blue) to green (app_green) and reload the proxy"]
rolled_back:
  description: On failure, what was undone (switching traffic back).
  returned: on failure after the switch
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.traffic_switch import TrafficSwitch


def main():
    run_procedure(TrafficSwitch)


if __name__ == "__main__":
    main()
