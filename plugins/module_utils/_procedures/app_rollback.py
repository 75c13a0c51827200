# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Return a service to a recorded revision (image and configuration), wait until it serves, verify."""

from __future__ import annotations

import re

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes import Verification
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    platform_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import Stopwatch
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step
from ansible_collections.ops.runbooks.plugins.module_utils._procedures._app_health import wait_rollout, wait_serving

_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_REVISION = re.compile(r"^[0-9a-f]{12}$")


class AppRollback(Procedure):
    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                service=dict(type="str", required=True),
                to_revision=dict(type="str"),
                steps_back=dict(type="int"),
                wait_timeout=dict(type="raw", default=180),
            ),
            mutually_exclusive=[["to_revision", "steps_back"]],
        )
        return spec.merge(platform_argspec()).merge(verify_argspec())

    def validate(self):
        p = self.params
        if not _SERVICE.match(p["service"]):
            raise ParameterError("service", f"{p['service']!r} is not a service name (letters, digits, '_', '.', '-')")
        if p["to_revision"] is not None and not _REVISION.match(p["to_revision"]):
            raise ParameterError("to_revision", f"{p['to_revision']!r} is not a revision id (12 hexadecimal digits, as "
                                                "listed in 'revisions' of an earlier run)")
        self.steps_back = 1 if p["steps_back"] is None else validate.positive(p["steps_back"], "steps_back",
                                                                              allow_zero=True)
        self.wait_timeout = validate.positive(validate.duration_seconds(p["wait_timeout"], "wait_timeout"),
                                              "wait_timeout")
        self.verify_probes = Verification(p, self.module)
        self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))
        self.backend.revision_vars(p["service"])
        self.recorded = False

    def observe(self):
        service = self.params["service"]
        current = self.backend.current_revision(service)
        self.history = self.backend.revision_history(service)
        if not self.history or self.history[0]["id"] != current["id"]:
            if self.check_mode:
                self.history.insert(0, current)  # what a real run would record first
            else:
                self.recorded = self.backend.record_revision(service, current) or self.recorded
                self.history = self.backend.revision_history(service)
        return {"revision": current}

    def target(self, current):
        service = self.params["service"]
        if self.params["to_revision"]:
            for revision in self.history:
                if revision["id"] == self.params["to_revision"]:
                    return revision
            raise RunbookError(f"to_revision {self.params['to_revision']} is not a recorded revision of {service} "
                               f"(recorded: {', '.join(self._ids()) or 'none'}); pick one of 'revisions'",
                               revisions=self.history)
        earlier = [i for i in self._ids() if i != current["id"]]
        if self.steps_back == 0:
            return current
        if len(earlier) < self.steps_back:
            raise RunbookError(f"{service}: steps_back={self.steps_back} but only {len(earlier)} earlier revision(s) "
                               "are recorded. A revision is recorded whenever app_rollback sees it: run it with "
                               "steps_back=0 after every deploy", revisions=self.history)
        wanted = earlier[self.steps_back - 1]
        return next(r for r in self.history if r["id"] == wanted)

    def _ids(self):
        """Distinct revision ids, newest first."""
        return list(dict.fromkeys(r["id"] for r in self.history))

    def plan(self, before):
        service, current = self.params["service"], before["revision"]
        self.target_revision = target = self.target(current)
        if target["id"] == current["id"]:
            return []
        self.backend.require_deployable(service, target)
        return [Step(f"deploy revision {target['id']} of {service} ({target['image']}, {_config(target)}) in place of "
                     f"{current['id']} ({current['image']}, {_config(current)}) and wait until it serves",
                     lambda: self.deploy(target))]

    def deploy(self, revision):
        done = self.backend.deploy_revision(self.params["service"], revision)
        watch = Stopwatch()
        if self.backend.rollouts:
            # Revisions may share an image (a changed setting): only the rollout says the old pods are gone.
            wait_rollout(self.backend, self.params["service"], self.wait_timeout)
        done["waited_seconds"] = wait_serving(self.backend, self.params["service"],
                                              max(0.0, self.wait_timeout - watch.elapsed), revision["image"])
        return done

    def verify(self, before, applied):
        now = self.backend.current_revision(self.params["service"])
        if now["id"] != self.target_revision["id"]:
            raise RunbookError(f"{self.params['service']} runs revision {now['id']} after the deploy, not "
                               f"{self.target_revision['id']}; another deploy may have raced this one")

    def rollback(self, before, applied, error):
        old = before["revision"]
        try:
            self.deploy(old)
        except RunbookError as exc:
            error.msg += (f"; redeploying the previous revision {old['id']} failed too ({exc.msg}): fix "
                          f"{self.params['service']} by hand")
            return []
        error.msg += f"; {self.params['service']} is back on revision {old['id']}"
        return [f"redeployed revision {old['id']} of {self.params['service']}"]

    def project(self, before, steps):
        return {"revision": self.target_revision}

    def report(self, before, after, steps):
        return {"service": self.params["service"], "revision": after["revision"],
                "previous_revision": before["revision"], "target_revision": self.target_revision,
                "recorded": self.recorded, "revisions": self.history}


def _config(revision):
    return ", ".join(f"{k}={v}" for k, v in revision["config"].items())
