# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of every runbook procedure: observe -> plan -> apply -> verify (-> rollback).

A procedure reads before it writes, writes only outside check mode, and proves the result. Subclasses
implement ``observe``, ``plan`` and, when they change something, ``verify`` and ``rollback``.
"""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import Stopwatch
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError


class Step:
    """One planned change. ``action`` is only called outside check mode."""

    def __init__(self, description, action, **details):
        self.description = description
        self.action = action
        self.details = details
        self.outcome = None
        self.seconds = None

    def describe(self):
        return self.description

    def apply(self):
        watch = Stopwatch()
        self.outcome = self.action()
        self.seconds = watch.elapsed
        return self.outcome


class Procedure:
    """Base class. ``module`` is the AnsibleModule; ``argument_spec()`` returns an ArgumentSpec."""

    #: extra libraries: list of (import name, available, traceback) checked before anything runs
    requirements = ()

    @classmethod
    def argument_spec(cls):
        raise NotImplementedError

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.diff_mode = module._diff
        self.warnings = []
        self._resources = []

    # -- hooks -------------------------------------------------------------------------------------
    def validate(self):
        """Raise ParameterError for bad input. Runs before any connection is opened."""

    def observe(self):
        """Return the current state (a JSON-serialisable dict)."""
        return {}

    def plan(self, before):
        """Return the list of Steps needed to reach the desired state; empty when there is nothing to do."""
        return []

    def verify(self, before, applied):
        """Prove the change worked; raise RunbookError when it did not."""

    def rollback(self, before, applied, error):
        """Undo ``applied`` after a failed apply or verify; return descriptions of what was undone."""
        return []

    def project(self, before, steps):
        """The state check mode predicts after ``steps``; used for the diff in check mode."""
        return before

    def report(self, before, after, steps):
        """Extra result keys."""
        return {}

    def own(self, resource):
        """Register a client with a ``close()`` so it is closed when the module ends, whatever happened."""
        self._resources.append(resource)
        return resource

    def close(self):
        while self._resources:
            self._resources.pop().close()

    # -- driver ------------------------------------------------------------------------------------
    def verification_probes(self):
        """The ``verify`` probes of a module that takes them (``verify_argspec``), else None.

        Built before anything is touched, so a bad probe fails fast; run after ``verify()`` by ``run()``, so
        every changing module proves its change the same way and rolls back the same way when it fails.
        """
        option = getattr(self.module, "argument_spec", {}).get("verify") or {}
        if option.get("elements") != "dict":  # no verify option, or one of the module's own (pg_backup)
            return None
        from ansible_collections.ops.runbooks.plugins.module_utils._common._probes import Verification

        return Verification(self.params, self.module)

    def run(self):
        watch = Stopwatch()
        self.validate()
        if getattr(self, "verify_probes", None) is None:
            self.verify_probes = self.verification_probes()
        verification = None
        before = self.observe()
        steps = self.plan(before)
        applied = []
        if steps and not self.check_mode:
            try:
                for step in steps:
                    step.apply()
                    applied.append(step)
                self.verify(before, applied)
                if self.verify_probes is not None:
                    verification = self.verify_probes.run()
            except RunbookError as exc:
                exc.details.setdefault("applied", [s.describe() for s in applied])
                exc.details["rolled_back"] = self.rollback(before, applied, exc)
                raise
            after = self.observe()
        else:
            after = self.project(before, steps) if steps else before
        result = {"changed": bool(steps), "plan": [s.describe() for s in steps]}
        result.update(self.report(before, after, applied if not self.check_mode else steps))
        if verification is not None:
            result["verification"] = verification
        if self.diff_mode:
            result["diff"] = {"before": before, "after": after}
        result["duration_seconds"] = watch.elapsed
        if self.warnings:
            result["warnings"] = list(self.warnings)
        return result
