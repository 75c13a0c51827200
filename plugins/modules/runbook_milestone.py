#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: runbook_milestone
short_description: Mark a runbook milestone and measure RTO and RPO against their targets
version_added: 0.2.0
description:
  - Records a named point of a run on the controller, for example the declared failure, the promotion or the
    verified service. The callback M(ops.runbooks.runbook_report) (a callback plugin) puts milestones on the
    run's timeline and report.
  - A milestone with O(starts_rto=true) starts the recovery time clock (at O(at), the moment the failure was
    declared, or now). A later one with O(ends_rto=true) measures the recovery time objective (RTO) from it
    and fails the task when it exceeds O(rto_target), so a breach fails the run.
  - With O(lost_rows) (the committed rows a failover lost, counted for example by M(ops.runbooks.pg_data_loss))
    and O(rpo_target), measures the recovery point objective (RPO) and fails the task when more rows were lost.
  - Never changes anything on any host; the RTO clock is kept as the host fact C(runbook_rto_clock).
extends_documentation_fragment:
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details: Measures in check mode too.
  diff_mode:
    support: none
  action:
    support: full
    description: Runs on the controller as an action plugin.
    details: Only the controller's clock is used, so every milestone is measured on the same clock.
options:
  name:
    description:
      - The milestone, for example V(failure_declared) or V(service_verified).
    type: str
    required: true
  at:
    description:
      - When it happened, as epoch seconds or an ISO 8601 timestamp (UTC when no zone is given). Defaults to now.
        Use it for a failure declared before the run started.
    type: raw
  starts_rto:
    description:
      - Start the RTO clock at this milestone.
    type: bool
    default: false
  ends_rto:
    description:
      - Stop the RTO clock here and measure the recovery time (requires an earlier O(starts_rto) milestone).
    type: bool
    default: false
  rto_target:
    description:
      - The RTO target (seconds or a duration such as V(5min)). Given with O(starts_rto), it is the budget the
        callback shows while the run goes on; given with O(ends_rto), it overrides that.
    type: raw
  lost_rows:
    description:
      - Committed rows that were lost, as counted.
    type: int
  rpo_target:
    description:
      - The most committed rows that may be lost. Requires O(lost_rows).
    type: int
  fail_on_breach:
    description:
      - Fail the task when the RTO or RPO measured here breaches its target. With V(false), the breach is only
        reported (RV(runbook_milestone.breaches)), for example to count the data loss before failing the run.
    type: bool
    default: true
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: The failure was declared before the run started
  ops.runbooks.runbook_milestone:
    name: failure_declared
    at: "{{ dr_failure_declared_at | default(omit) }}"
    starts_rto: true
    rto_target: 20s

- name: Service verified end to end; fail the run when the RTO or RPO is breached
  ops.runbooks.runbook_milestone:
    name: service_verified
    ends_rto: true
    lost_rows: "{{ data_loss.lost_rows }}"
    rpo_target: 0
"""

RETURN = r"""
runbook_milestone:
  description: The milestone and, when measured, the RTO and RPO against their targets.
  returned: always
  type: dict
  contains:
    name: {description: The milestone's name., type: str}
    at: {description: When it happened (epoch seconds)., type: float}
    rto:
      description: With O(ends_rto), C(measured_seconds), C(target_seconds), C(met) and the start milestone (C(from)).
      type: dict
    rpo:
      description: With O(lost_rows), C(lost_rows), C(target_rows) and C(met).
      type: dict
    breaches:
      description: The breached objectives, as messages (empty when none).
      type: list
      elements: str
    rto_clock:
      description: While the clock runs, when it started, its target and the seconds elapsed.
      type: dict
  sample:
    name: service_verified
    at: 1795000012.4
    rto: {measured_seconds: 12.4, target_seconds: 20, met: true, from: failure_declared, started_at: 1795000000.0}
    rpo: {lost_rows: 0, target_rows: 0, met: true}
"""
