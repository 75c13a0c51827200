# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remove exited containers and old images, keeping the newest images of every repository."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    platform_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step

KINDS = (("containers", "container"), ("images", "image"))


def _label(kind, candidate):
    if candidate.get("label"):  # the backend's own words (a finished Kubernetes pod is no exited container)
        return candidate["label"]
    if kind == "container":
        return f"exited container {candidate['name']} ({candidate['id']}, image {candidate['image']})"
    return f"image {candidate['id'][:19]} of {candidate['repository']} ({', '.join(candidate['tags'])})"


class Cleanup(Procedure):
    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                scope=dict(type="str", default="project", choices=["project", "all"]),
                keep_images=dict(type="int", default=3),
            )
        )
        return spec.merge(platform_argspec()).merge(verify_argspec())

    def validate(self):
        p = self.params
        validate.positive(p["keep_images"], "keep_images", allow_zero=True)
        self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))

    def observe(self):
        return self.backend.cleanup_candidates(self.params["keep_images"], self.params["scope"])

    def plan(self, before):
        # Containers first: an old image is only free once the exited containers using it are gone.
        return [Step(f"remove {_label(kind, c)}", lambda kind=kind, c=c: self.backend.remove(kind, c), kind=kind,
                     candidate=c)
                for key, kind in KINDS for c in before[key]]

    def verify(self, before, applied):
        after = self.observe()
        still = {_label(kind, c) for key, kind in KINDS for c in after[key]}
        left = [_label(s.details["kind"], s.details["candidate"]) for s in applied
                if _label(s.details["kind"], s.details["candidate"]) in still]
        if left:
            raise RunbookError(f"cleanup did not finish: still present after removal: {'; '.join(left)}; "
                               "check whether something recreated them", still_present=left)

    def project(self, before, steps):
        return {"containers": [], "images": []}

    def report(self, before, after, steps):
        done = {key: [s.details["candidate"] for s in steps if s.details["kind"] == kind] for key, kind in KINDS}
        nothing = {key: [] for key, _kind in KINDS}
        return {"containers": before["containers"], "images": before["images"],
                "removed": nothing if self.check_mode else done, "would_remove": done if self.check_mode else nothing}
