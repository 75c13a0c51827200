#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_rollback
short_description: Return an application service to a recorded revision (image and configuration)
version_added: 0.1.0
description:
  - A revision is the image a service runs plus the settings that define it. Every run records the revision the
    service runs now when it is not the newest one recorded, so run the module with O(steps_back=0) after each
    deploy to keep the history complete.
  - Deploys the chosen revision, waits until every replica runs its image and is healthy, proves it with O(verify),
    and redeploys the previous revision when any of that fails.
  - Fails before changing anything when the revision's image is no longer on the host.
  - Nothing changes when the service already runs the chosen revision; with O(to_revision) the task is repeatable.
  - On V(compose), C(platform_settings.revision_vars) names per service the env file variables that define a
    revision (for example C(app_blue) mapped to C([APP_BLUE_IMAGE, APP_BLUE_REVISION])); never name a secret
    there, the values are recorded and returned. The history is
    C(<project_dir>/.runbooks/revisions/<service>.json) (mode 0600).
    Deploying rewrites those variables in the env file atomically and runs C(docker compose up -d --no-deps) for the
    service, keeping its current replica count.
  - In check mode, reports the revision it would deploy and records nothing.
  - On V(k8s), the revisions are the Deployment's ReplicaSets (its own history, kept up to
    C(revisionHistoryLimit)); a revision's id is a fingerprint of its pod template and C(number) its
    C(deployment.kubernetes.io/revision). Rolling back sets the Deployment's template to that ReplicaSet's, as
    C(kubectl rollout undo) does, and waits until the rollout is complete; when it is not within O(wait_timeout),
    the template of the revision it ran before is put back.
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
      - The service to roll back (a Compose service on V(compose)).
    type: str
    required: true
  to_revision:
    description:
      - The id of the revision to return to, as listed in RV(revisions). Mutually exclusive with O(steps_back).
    type: str
  steps_back:
    description:
      - Return to the revision this many distinct revisions before the one running now, newest first in the history.
      - Defaults to V(1) when O(to_revision) is not given. V(0) only records the current revision.
      - It counts from what runs now, so running it twice moves twice (V(1) toggles between the last two revisions);
        use O(to_revision) in a task that must be repeatable.
    type: int
  wait_timeout:
    description:
      - Seconds (or a duration such as V(3min)) to wait until every replica runs the revision and is healthy.
    type: raw
    default: 180
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Record what app_blue runs after a deploy
  ops.runbooks.app_rollback:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    service: app_blue
    steps_back: 0

- name: Roll app_blue back to the revision before the current one and prove it
  ops.runbooks.app_rollback:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    service: app_blue
    verify:
      - type: http
        url: "{{ runbook_slot_urls.blue }}/health/ready"

- name: Return to a known revision (repeatable)
  ops.runbooks.app_rollback:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    service: app_blue
    to_revision: 3f2a9c81d0be
"""

RETURN = r"""
service:
  description: The service.
  returned: always
  type: str
revision:
  description: The revision the service runs after the run (in check mode, the one it would run).
  returned: always
  type: dict
  contains:
    id: {description: Fingerprint of the image id and the configuration., type: str, sample: 3f2a9c81d0be}
    image: {description: The image reference., type: str, sample: "ops-runbooks/lab-app:866696ee56e6adea"}
    image_id: {description: The image id., type: str}
    config: {description: The settings that define the revision (variable -> value)., type: dict}
    recorded_at: {description: "When it was recorded (UTC, ISO 8601); null when not recorded yet.", type: str}
previous_revision:
  description: The revision the service ran before the run (same keys as RV(revision)).
  returned: always
  type: dict
target_revision:
  description: The revision chosen by O(to_revision) or O(steps_back) (same keys as RV(revision)).
  returned: always
  type: dict
recorded:
  description: Whether this run added an entry to the history.
  returned: always
  type: bool
revisions:
  description: The recorded revisions, newest first (a log of deployments; in check mode with the current one it
    would record).
  returned: always
  type: list
  elements: dict
verification:
  description: Result of the O(verify) probes after the change (per-probe details).
  returned: when something changed and O(verify) is set
  type: dict
plan:
  description: What was done (or would be done in check mode); empty when nothing had to change.
  returned: always
  type: list
  elements: str
rolled_back:
  description: On failure, what was undone (redeploying the previous revision).
  returned: on failure after the deploy started
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.app_rollback import AppRollback


def main():
    run_procedure(AppRollback)


if __name__ == "__main__":
    main()
