#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: health_check
short_description: Check many HTTP, TCP, PostgreSQL, Redis and TLS targets at once and give one verdict
version_added: 0.1.0
description:
  - Checks every target concurrently (at most O(concurrency) at a time) and returns one verdict, RV(healthy),
    with the result of each target.
  - A failed check is retried O(retries) times, O(retry_delay) apart. The whole run, retries included, is
    bounded by one O(timeout); targets still unanswered then fail with reason V(timeout), while the results
    of the others are kept.
  - O(fail_on) decides whether unhealthy targets fail the task.
  - Hundreds of targets take about as long as the slowest of them, not their sum. HTTP targets share
    connection pools.
  - Never changes anything. Runs the same in check mode.
  - The same targets can be given to the C(verify) option of the modules that change something, to prove
    the change worked.
extends_documentation_fragment:
  - ops.runbooks.verify.TARGETS
  - ops.runbooks.attributes.INFO_MODULE
options:
  retries:
    description:
      - How many times to check a failed target again, unless the target sets its own C(retries).
    type: int
    default: 0
  retry_delay:
    description:
      - Seconds (or a duration such as V(500ms), V(2s)) between a failed check and the next, unless the target
        sets its own C(retry_delay).
    type: raw
    default: 1
  timeout:
    description:
      - Seconds (or a duration such as V(90s), V(2min)) the whole check may take, every target and retry
        included.
    type: raw
    default: 30
  concurrency:
    description:
      - How many targets are checked at the same time at most.
    type: int
    default: 50
  fail_on:
    description:
      - V(any) fails the task when at least one target is unhealthy.
      - V(all) fails it only when every target is unhealthy (for example, at least one replica must answer).
      - V(none) never fails it; use RV(healthy) and RV(targets) in later tasks.
    type: str
    default: any
    choices: [any, all, none]
requirements:
  - httpx >= 0.28 (type V(http))
  - psycopg >= 3.1 (type V(postgres))
  - redis >= 5 (type V(redis))
  - cryptography >= 42 (type V(tls))
notes:
  - A library is needed only when a target of its type is given.
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Check the application, its database, its cache and its certificate
  ops.runbooks.health_check:
    targets:
      - name: api
        type: http
        url: https://app.example.com/health/ready
        body_regex: '"status":\s*"ok"'
        max_latency: 500ms
      - name: primary accepts writes
        type: postgres
        host: db.example.com
        login_user: monitor
        login_password: "{{ vault_pg_password }}"
        query: SELECT NOT pg_is_in_recovery()
      - name: cache
        type: redis
        host: cache.example.com
        password: "{{ vault_redis_password }}"
      - name: certificate
        type: tls
        host: app.example.com
        min_days: 21
    retries: 2
    retry_delay: 2s
    timeout: 60

- name: At least one replica must accept connections
  ops.runbooks.health_check:
    targets:
      - {type: tcp, host: db-replica-1.example.com, port: 5432}
      - {type: tcp, host: db-replica-2.example.com, port: 5432}
    fail_on: all
  register: replicas

- name: Show the replicas that did not answer
  ansible.builtin.debug:
    msg: "{{ replicas.failed_targets }}"
  when: not replicas.healthy
"""

RETURN = r"""
healthy:
  description: Whether every target is healthy, whatever O(fail_on) says.
  returned: always
  type: bool
  sample: false
targets:
  description: One result per target, in the order given. Secrets are masked.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The target's name.
      type: str
      sample: api
    type:
      description: The target's type.
      type: str
      sample: http
    address:
      description: Where the target is (the URL for V(http), without any password).
      type: str
      sample: https://app.example.com/health/ready
    ok:
      description: Whether the target is healthy.
      type: bool
      sample: false
    reason:
      description:
        - Why the target is not healthy; V(null) when it is.
        - V(check) - it answered, but not as expected (status, body, query result, certificate expiry, latency).
        - V(error) - it could not be reached or asked (refused, name not found, TLS or login failure).
        - V(timeout) - no healthy answer before O(timeout).
      type: str
      sample: check
    error:
      description: What went wrong, for a person to read; V(null) when healthy.
      type: str
      sample: status 503, expected one of [200]
    latency_ms:
      description: How long the last check took, in milliseconds; V(null) when it never finished.
      type: float
      sample: 12.7
    attempts:
      description: How many checks were made (1 plus the retries used).
      type: int
      sample: 3
    detail:
      description:
        - What the last check found, by type. V(http) - C(status), C(http_version). V(tcp) - C(peer).
          V(postgres) - C(server_version), C(result) of the query. V(redis) - C(username).
          V(tls) - C(server_name), C(subject), C(issuer), C(subject_alt_names), C(serial_number),
          C(fingerprint_sha256), C(not_before), C(not_after), C(days_left).
      type: dict
      sample: {"status": 503, "http_version": "HTTP/1.1"}
  sample:
    - name: api
      type: http
      address: https://app.example.com/health/ready
      ok: true
      reason: null
      error: null
      latency_ms: 12.7
      attempts: 1
      detail: {"status": 200, "http_version": "HTTP/1.1"}
counts:
  description: How many targets were checked, healthy, unhealthy, and unhealthy because of O(timeout).
  returned: always
  type: dict
  sample: {"total": 500, "ok": 498, "failed": 2, "timed_out": 1}
failed_targets:
  description: Names of the unhealthy targets.
  returned: always
  type: list
  elements: str
  sample: [cache]
check_seconds:
  description: How long checking the targets took.
  returned: always
  type: float
  sample: 0.84
plan:
  description: Always empty; this module changes nothing.
  returned: success
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: success
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.health_check import HealthCheck


def main():
    run_procedure(HealthCheck)


if __name__ == "__main__":
    main()
