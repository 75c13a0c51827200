#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cleanup
short_description: Remove exited containers and old images, keeping the newest images of each repository
version_added: 0.1.0
description:
  - Removes exited (and dead) containers, then the old images of each repository, keeping the newest
    O(keep_images) by creation time.
  - An image here is an image ID. A repository's images are the IDs with at least one tag in that repository;
    several tags of one ID count once. Removing an old image removes that repository's tags of it; the image
    data goes with its last tag, so an ID another repository still names is kept under that name.
  - An image used by any container on the host, running or stopped, is never removed, whatever O(scope) says;
    containers this run removes no longer count, so a second run has nothing left to do.
  - Untagged (dangling) images belong to no repository and are left alone (C(docker image prune) is for them).
  - Nothing is ever forced - an image or container that is in use when removed stays and the module fails.
  - Check mode is the dry run - it lists what would be removed and removes nothing.
  - On V(k8s), removes the pods of the namespace (O(scope=project)) or of every namespace (O(scope=all)) that
    finished, in phase C(Failed) or C(Succeeded); they are returned under C(containers). Images are the kubelet's
    business, so O(keep_images) does not apply and C(images) stays empty.
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
  scope:
    description:
      - V(project) - containers of the project (O(platform_settings)), and images of the repositories its
        containers use.
      - V(all) - every container and every repository on the host.
    type: str
    default: project
    choices: [project, all]
  keep_images:
    description:
      - How many of the newest images to keep in each repository, besides those in use. V(0) keeps only images
        in use.
    type: int
    default: 3
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: See what cleanup would remove
  ops.runbooks.cleanup:
    platform: "{{ runbook_platform }}"
    platform_settings: "{{ runbook_platform_settings }}"
  check_mode: true
  register: would

- name: Remove exited containers and all but the 2 newest images of every repository on the host
  ops.runbooks.cleanup:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    scope: all
    keep_images: 2
    verify:
      - {type: http, url: "{{ runbook_public_url }}/health/ready"}
"""

RETURN = r"""
containers:
  description: The exited containers in scope, as found before any change.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: 3f2a1b0c9d8e, name: myproj-migrate-1, image: "registry.example.com/app:1.4", state: exited,
       service: migrate}
images:
  description: The old images in scope (not among the newest O(keep_images) of their repository, used by no
    container), as found before any change.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: "sha256:5d0da3dc9764...", repository: registry.example.com/app, tags: ["registry.example.com/app:1.1"],
       created: "2024-04-02T10:11:12.123456789Z"}
removed:
  description: What was removed - C(containers) and C(images), each as in RV(containers) and RV(images). Empty
    in check mode.
  returned: always
  type: dict
would_remove:
  description: What would be removed (check mode only, otherwise empty lists).
  returned: always
  type: dict
verification:
  description: Result of the O(verify) probes after the change (per-probe details); absent when nothing was probed.
  returned: when O(verify) is set and something changed
  type: dict
plan:
  description: One line per container or image to remove.
  returned: always
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.cleanup import Cleanup


def main():
    run_procedure(Cleanup)


if __name__ == "__main__":
    main()
