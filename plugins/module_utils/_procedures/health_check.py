# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check many targets at once and give one verdict. Read-only: it never changes anything, in check mode or not."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes import (
    DEFAULT_CONCURRENCY,
    check_targets,
    hide_secrets,
    parse_targets,
    probe_options,
    summarize,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure

FAIL_ON = ["any", "all", "none"]


class HealthCheck(Procedure):
    @classmethod
    def argument_spec(cls):
        return ArgumentSpec(
            dict(
                targets=dict(type="list", elements="dict", required=True, options=probe_options()),
                retries=dict(type="int", default=0),
                retry_delay=dict(type="raw", default=1),
                timeout=dict(type="raw", default=30),
                concurrency=dict(type="int", default=DEFAULT_CONCURRENCY),
                fail_on=dict(type="str", default="any", choices=FAIL_ON),
            )
        )

    def __init__(self, module):
        super().__init__(module)
        # The report is the whole result; a before/after diff of a read-only check would only repeat it.
        self.diff_mode = False

    def validate(self):
        p = self.params
        validate.positive(p["retries"], "retries", allow_zero=True)
        retry_delay = validate.duration_seconds(p["retry_delay"], "retry_delay")
        self.timeout = validate.positive(validate.duration_seconds(p["timeout"], "timeout"), "timeout")
        validate.positive(p["concurrency"], "concurrency")
        if not p["targets"]:
            raise ParameterError("targets", "give at least one target")
        self.probes = parse_targets(p["targets"], "targets", p["retries"], retry_delay)
        hide_secrets(self.module, self.probes)

    def observe(self):
        return check_targets(self.probes, self.timeout, self.params["concurrency"])

    def report(self, before, after, steps):
        counts, fail_on = before["counts"], self.params["fail_on"]
        if (fail_on == "any" and counts["failed"]) or (fail_on == "all" and counts["failed"] == counts["total"]):
            raise RunbookError(
                f"health check failed (fail_on={fail_on}): {counts['failed']} of {counts['total']} targets are "
                f"unhealthy: {summarize(before)}; see targets for each result",
                **before,
            )
        return before
