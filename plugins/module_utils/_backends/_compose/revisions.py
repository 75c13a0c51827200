# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: recorded revisions and rollback (app_rollback).

A service's revision is the image its containers run plus the values of the env file variables that define it,
named per service in ``platform_settings.revision_vars`` (``{app_blue: [APP_BLUE_IMAGE, APP_BLUE_REVISION]}``).
The history is a log in ``<project_dir>/.runbooks/revisions/<service>.json`` (mode 0600), appended whenever a
revision is observed that is not the newest entry. Deploying a revision rewrites those variables in the env file
and recreates only that service's containers, keeping its replica count.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

HISTORY_LIMIT = 100
_ENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def revision_id(image_id, config):
    data = json.dumps({"image_id": image_id, "config": config}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:12]


class RevisionsMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""

    def revision_vars(self, service):
        names = (self.settings.get("revision_vars") or {}).get(service)
        if not names or not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ParameterError("platform_settings.revision_vars",
                                 f"no env file variables are named for service {service!r}; add e.g. "
                                 f"{{{service}: [{service.upper()}_IMAGE, {service.upper()}_REVISION]}}")
        return names

    def _env_file(self):
        return self.engine.settings["env_file"] or os.path.join(self.engine.settings["project_dir"], ".env")

    def _read_env(self):
        path = self._env_file()
        try:
            with open(path) as f:
                return path, f.read()
        except OSError as exc:
            raise RunbookError(f"reading the env file {path} failed: {exc}; check platform_settings.env_file") from None

    def _history_file(self, service):
        return os.path.join(self.engine.settings["project_dir"], ".runbooks", "revisions", f"{service}.json")

    def current_revision(self, service):
        names = self.revision_vars(service)
        self.engine.require_service(service)
        running = [self.engine.describe(c) for c in self.engine.containers(service, all=False)]
        if not running:
            raise RunbookError(f"service {service} has no running container, so its revision is unknown; start it "
                               f"(docker compose up -d {service}) and run again")
        values = {}
        for line in self._read_env()[1].splitlines():
            m = _ENV_LINE.match(line.strip())
            if m:
                values[m.group(1)] = m.group(2)
        config = {name: values.get(name) for name in names}
        # Replicas may differ halfway through a deploy; the newest one is what the service is becoming.
        newest = max(running, key=lambda r: r["started_at"] or "")
        return {"id": revision_id(newest["image_id"], config), "image": newest["image"],
                "image_id": newest["image_id"], "config": config, "recorded_at": None}

    def revision_history(self, service):
        path = self._history_file(service)
        if not os.path.exists(path):
            return []
        try:
            with open(path) as f:
                return list(reversed(json.load(f)["revisions"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunbookError(f"reading the revision history {path} failed: {exc}; move the file away to start a "
                               "new history") from None

    @writes
    def record_revision(self, service, revision):
        history = self.revision_history(service)
        if history and history[0]["id"] == revision["id"]:
            return False
        entry = dict(revision, recorded_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
        log = list(reversed([entry] + history))[-HISTORY_LIMIT:]
        path = self._history_file(service)
        for directory in (os.path.dirname(os.path.dirname(path)), os.path.dirname(path)):
            os.makedirs(directory, mode=0o700, exist_ok=True)  # makedirs gives the mode to the last one only
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.engine.replace_file(path, json.dumps({"service": service, "revisions": log}, indent=1) + "\n")
        return True

    def require_deployable(self, service, revision):
        found = self.engine.image_id(revision["image"])
        if found is None:
            raise RunbookError(f"revision {revision['id']} of {service} needs image {revision['image']}, which is not "
                               f"on this host any more; restore it (docker tag/load/pull) or pick another revision",
                               revision=revision["id"])
        if found != revision["image_id"]:
            raise RunbookError(f"revision {revision['id']} of {service} ran image {revision['image']} as "
                               f"{revision['image_id']}, but that name now points to {found}; re-tag the recorded "
                               "image or pick another revision", revision=revision["id"])
        missing = sorted(set(self.revision_vars(service)) - set(revision["config"]))
        if missing:
            raise RunbookError(f"revision {revision['id']} of {service} does not record {', '.join(missing)} (listed "
                               "in platform_settings.revision_vars); pick a revision recorded with the same variables")

    @writes
    def deploy_revision(self, service, revision):
        path, text = self._read_env()
        config = {k: v for k, v in revision["config"].items() if v is not None}
        lines, seen = [], set()
        for line in text.splitlines():
            m = _ENV_LINE.match(line.strip())
            if m and m.group(1) in config:
                line = f"{m.group(1)}={config[m.group(1)]}"
                seen.add(m.group(1))
            lines.append(line)
        lines += [f"{k}={v}" for k, v in config.items() if k not in seen]
        self.engine.replace_file(path, "\n".join(lines) + "\n")
        # Keep the replica count as it is now, whatever the env file says about it.
        count = len(self.engine.containers(service, all=False))
        scale = ["--scale", f"{service}={count}"] if count else []
        try:
            self.engine.compose("up", "--detach", "--no-deps", *scale, service)
        except RunbookError:
            self.engine.replace_file(path, text)
            raise
        return {"env_file": path, "config": config, "replicas": count}
