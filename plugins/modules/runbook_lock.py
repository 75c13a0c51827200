#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: runbook_lock
short_description: Take or release a named lock so two runs of a runbook cannot overlap
version_added: 0.2.0
description:
  - Takes (O(state=present)) or releases (O(state=absent)) a lock named O(name) on the managed host, held by
    O(owner). Of two runs taking the same lock at the same moment exactly one succeeds (the lock file is created
    exclusively); the other fails with a message naming the holder, when it took the lock and why.
  - Taking a lock already held by the same O(owner), or releasing a lock nobody holds, changes nothing.
  - A lock held longer than O(stale_after) by another owner (a run that died without releasing it) is taken
    over; without O(stale_after) it never is.
  - Run it on one host every run shares (for example C(delegate_to) the automation controller, or the DR
    site's jump host) so that every run sees the same lock.
extends_documentation_fragment:
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description:
      - The lock's name, for example V(dr-failover-shop). Letters, digits, C(.), C(_) and C(-).
    type: str
    required: true
  owner:
    description:
      - Who holds the lock, an identifier unique to this run, so the run that took the lock is the one that
        releases it.
    type: str
    required: true
  state:
    description:
      - V(present) takes the lock, V(absent) releases it.
    type: str
    default: present
    choices: [present, absent]
  lock_dir:
    description:
      - Directory of the lock files on the managed host (created 0700 when missing).
    type: path
    default: /var/tmp/ops-runbooks-locks
  stale_after:
    description:
      - Age (seconds, or a duration such as V(2h)) after which another owner's lock counts as abandoned and
        may be taken over. Unset means never.
    type: raw
  wait_timeout:
    description:
      - How long to wait for another owner to release the lock before failing (seconds or a duration).
    type: raw
    default: 0
  purpose:
    description:
      - Why the lock is held, shown to a run that finds it taken.
    type: str
    default: ""
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Only one failover at a time
  ops.runbooks.runbook_lock:
    name: dr-failover
    owner: "{{ dr_run_id }}"
    purpose: failover to {{ dr_secondary_site }}
    stale_after: 2h

- name: Release it
  ops.runbooks.runbook_lock:
    name: dr-failover
    owner: "{{ dr_run_id }}"
    state: absent
"""

RETURN = r"""
lock_file:
  description: Path of the lock file.
  returned: always
  type: str
held:
  description: Whether O(owner) holds the lock after the task.
  returned: always
  type: bool
holder:
  description: Who holds the lock after the task (null when nobody does).
  returned: always
  type: dict
  sample: {owner: 3f9c, acquired_at: 1795000000.1, host: ctl-1, pid: 4242, purpose: failover to site-b}
previous_holder:
  description: Who held it before the task.
  returned: always
  type: dict
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.runbook_lock import RunbookLock


def main():
    run_procedure(RunbookLock)


if __name__ == "__main__":
    main()
