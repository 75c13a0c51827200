# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When is an application service serving? Shared by the app procedures; platform-neutral (uses
``Backend.replicas``)."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError


def problems(replicas, image=None):
    """Why ``replicas`` are not all serving (``Backend.serving``) on ``image``; empty when they are."""
    found = [] if replicas else ["it has no replica"]
    for r in replicas:
        if not Backend.serving(r):
            found.append(f"{r['name']} is {r['health'] if r['state'] == 'running' else r['state']}")
        elif image is not None and r["image"] != image:
            found.append(f"{r['name']} runs {r['image']}, not {image}")
    return found


def wait_serving(backend, service, timeout, image=None):
    """Wait until every replica of ``service`` is running, healthy (and on ``image``); returns the seconds waited."""

    def serving():
        found = problems(backend.replicas(service), image)
        if found:
            raise RunbookError("; ".join(found))  # wait_until reports the last one on timeout
        return True

    return wait_until(serving, timeout, 1.0, what=f"every replica of {service} to be running and healthy")[1]


def wait_rollout(backend, service, timeout):
    """Wait until the platform's rollout of ``service`` is complete (``Backend.rollout_status``); returns seconds."""

    def complete():
        done, message = backend.rollout_status(service)
        if not done:
            raise RunbookError(message)
        return True

    return wait_until(complete, timeout, 1.0, what=f"the rollout of {service} to complete")[1]
