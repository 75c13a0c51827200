# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A named lock on the managed host, so two runs of the same runbook (a failover, say) cannot overlap.

The lock is a file created with O_CREAT|O_EXCL, so of two runs racing for it exactly one wins, holding who took
it and when. It is released by the owner that took it; a lock older than ``stale_after`` may be taken over.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time

from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def read_holder(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"owner": None, "acquired_at": os.path.getmtime(path), "unreadable": True}


class RunbookLock(Procedure):
    @classmethod
    def argument_spec(cls):
        return ArgumentSpec(dict(
            name=dict(type="str", required=True),
            owner=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            lock_dir=dict(type="path", default="/var/tmp/ops-runbooks-locks"),
            stale_after=dict(type="raw"),
            wait_timeout=dict(type="raw", default=0),
            purpose=dict(type="str", default=""),
        ))

    def validate(self):
        p = self.params
        if not _NAME.match(p["name"]):
            raise ParameterError("name", f"{p['name']!r} is not a lock name: use letters, digits, '.', '_' or '-' "
                                         "(at most 128 characters, starting with a letter or digit)")
        if not p["owner"].strip():
            raise ParameterError("owner", "must not be empty: use an identifier of this run")
        self.stale_after = validate.duration_seconds(p["stale_after"], "stale_after")
        self.wait_timeout = validate.duration_seconds(p["wait_timeout"], "wait_timeout")
        self.path = os.path.join(p["lock_dir"], f"{p['name']}.lock")

    def observe(self):
        holder = read_holder(self.path)
        if holder is not None and holder.get("owner") != self.params["owner"] and self.params["state"] == "present":
            holder = self._wait_for_release(holder)
        return {"lock_file": self.path, "holder": holder}

    def _stale(self, holder):
        return self.stale_after is not None and time.time() - float(holder.get("acquired_at") or 0) > self.stale_after

    def _wait_for_release(self, holder):
        if self._stale(holder) or not self.wait_timeout:
            return holder
        try:
            wait_until(lambda: read_holder(self.path) is None, self.wait_timeout, interval=0.5,
                       what=f"lock {self.params['name']} held by {holder.get('owner')} to be released")
        except RunbookError:
            return read_holder(self.path) or holder
        return read_holder(self.path)

    def plan(self, before):
        holder, owner = before["holder"], self.params["owner"]
        if self.params["state"] == "absent":
            if holder is None:
                return []
            if holder.get("owner") != owner:
                raise RunbookError(f"lock {self.params['name']} is held by {holder.get('owner')!r}, not by {owner!r}; "
                                   "only its owner releases it", holder=holder)
            return [Step(f"release lock {self.params['name']}", self._release)]
        if holder is None:
            return [Step(f"take lock {self.params['name']}", self._acquire)]
        if holder.get("owner") == owner:
            return []
        if self._stale(holder):
            return [Step(f"take over stale lock {self.params['name']} from {holder.get('owner')!r}",
                         self._take_over, previous=holder)]
        raise RunbookError(f"lock {self.params['name']} is held by {holder.get('owner')!r} since "
                           f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(float(holder.get('acquired_at') or 0)))}"
                           f" ({holder.get('purpose') or 'no purpose given'}); another run is in progress. Wait for "
                           "it, or remove the lock file when that run is known to be dead", holder=holder,
                           lock_file=self.path)

    def _record(self):
        return {"owner": self.params["owner"], "acquired_at": time.time(), "host": socket.gethostname(),
                "pid": os.getpid(), "purpose": self.params["purpose"]}

    def _acquire(self):
        os.makedirs(self.params["lock_dir"], mode=0o700, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            holder = read_holder(self.path) or {}
            raise RunbookError(f"lock {self.params['name']} was taken by {holder.get('owner')!r} a moment ago; "
                               "another run is in progress", holder=holder) from None
        with os.fdopen(fd, "w") as f:
            json.dump(self._record(), f)

    def _take_over(self):
        tmp = f"{self.path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self._record(), f)
        os.replace(tmp, self.path)

    def _release(self):
        os.unlink(self.path)

    def project(self, before, steps):
        return {"lock_file": self.path,
                "holder": None if self.params["state"] == "absent" else dict(self._record(), acquired_at=None)}

    def report(self, before, after, steps):
        return {"lock_file": self.path, "holder": after["holder"], "previous_holder": before["holder"],
                "held": after["holder"] is not None and after["holder"].get("owner") == self.params["owner"]}
