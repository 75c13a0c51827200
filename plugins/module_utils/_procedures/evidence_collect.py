# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Collect incident evidence (platform logs and states, database activity, deploy history) into one redacted,
hashed tarball."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from datetime import UTC, datetime

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import REQUIREMENT, PostgresClient
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    platform_argspec,
    postgres_connection_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step
from ansible_collections.ops.runbooks.plugins.module_utils._common.redact import Redactor

PREFIX = "evidence-"
# One read-only transaction: a consistent snapshot of the statistics views, and nothing can be written.
DATABASE_QUERIES = {
    "server": "SELECT now() AS taken_at, version(), pg_is_in_recovery() AS in_recovery",
    "activity": "SELECT *, pg_blocking_pids(pid) AS blocked_by FROM pg_stat_activity ORDER BY pid",
    "locks": "SELECT l.*, l.relation::regclass::text AS relation_name FROM pg_locks l ORDER BY l.granted, l.pid",
    "replication": "SELECT * FROM pg_stat_replication ORDER BY pid",
    "wal_receiver": "SELECT * FROM pg_stat_wal_receiver",
    "replication_slots": "SELECT * FROM pg_replication_slots ORDER BY slot_name",
}


def parse_since(value, param="since", now=None):
    """A duration back from now (``30min``) or an ISO 8601 timestamp (UTC when it has no offset); aware UTC."""
    now = now or datetime.now(UTC)
    try:
        return datetime.fromtimestamp(now.timestamp() - validate.duration_seconds(value, param), UTC)
    except ParameterError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ParameterError(param, f"{value!r} is neither a duration (30min, 2h) nor an ISO 8601 timestamp "
                                    "(2024-05-01T13:00:00Z)") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment > now:
        raise ParameterError(param, f"{value!r} is in the future; give a past timestamp or a duration such as 30min")
    return moment.astimezone(UTC)


class EvidenceCollect(Procedure):
    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                dest=dict(type="path", required=True),
                since=dict(type="str", default="1h"),
                services=dict(type="list", elements="str"),
                postgres=dict(type="dict", options=postgres_connection_argspec().argument_spec),
                deploy_history=dict(type="bool", default=True),
                redact=dict(type="list", elements="str", default=[], no_log=True),
            )
        )
        return spec.merge(platform_argspec())

    def validate(self):
        p = self.params
        self.since = parse_since(p["since"])
        if os.path.exists(p["dest"]) and not os.path.isdir(p["dest"]):
            raise ParameterError("dest", f"{p['dest']!r} exists and is not a directory; give a directory")
        for i, service in enumerate(p["services"] or []):
            if not service:
                raise ParameterError(f"services[{i}]", "empty service name")
        if p["postgres"] is not None and not REQUIREMENT[1]:
            raise RunbookError(f"postgres: {missing_required_lib(REQUIREMENT[0])}", exception=REQUIREMENT[2])
        self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))
        self.db = self.own(PostgresClient(p["postgres"])) if p["postgres"] is not None else None

    def observe(self):
        dest = self.params["dest"]
        found = os.listdir(dest) if os.path.isdir(dest) else []
        return {"bundles": sorted(n for n in found if n.startswith(PREFIX) and n.endswith(".tar.gz"))}

    def plan(self, before):
        p = self.params
        self.sources = self.backend.collect_evidence(self.since, p["services"], p["deploy_history"])
        if self.db is not None:
            self.sources.append(("database/activity.json", self.database_activity))
        # Every secret the run knows: the task's no_log values (login_password, redact) and the platform's.
        self.redact = Redactor(set(getattr(self.module, "no_log_values", ())) | set(p["redact"])
                               | set(self.backend.known_secrets()))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self.name = f"{PREFIX}{self.backend.platform}-{stamp}"
        self.path = os.path.join(p["dest"], f"{self.name}.tar.gz")
        return [Step(f"write {self.path} with {len(self.sources)} files (secrets redacted)", self.write_bundle)]

    def database_activity(self):
        with self.db.conn.transaction():
            self.db.query("SET TRANSACTION READ ONLY")
            snapshot = {key: self.db.query(query) for key, query in DATABASE_QUERIES.items()}
        return json.dumps(snapshot, indent=2, default=str).encode()

    def write_bundle(self):
        os.makedirs(self.params["dest"], mode=0o700, exist_ok=True)
        files, missing = [], {}
        partial = f"{self.path}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for path, read in self.sources:
                    try:
                        content, count = self.redact(read())
                    except RunbookError as exc:
                        # Evidence is wanted most when things are broken: a source that cannot be read is noted
                        # and the rest is still collected.
                        missing[path] = self.redact(exc.msg)[0].decode("utf-8", "replace")
                        self.warnings.append(f"evidence {path} not collected: {missing[path]}")
                        continue
                    _add(tar, f"{self.name}/{path}", content)
                    files.append({"path": path, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content),
                                  "redacted": count})
                manifest = {"created_at": datetime.now(UTC).isoformat(), "since": self.since.isoformat(),
                            "platform": self.backend.platform, "files": files, "missing": missing}
                _add(tar, f"{self.name}/manifest.json", json.dumps(manifest, indent=2).encode())
            os.replace(partial, self.path)
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise
        digest = _sha256(self.path)
        sha_file = f"{self.path}.sha256"
        with os.fdopen(os.open(sha_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f"{digest}  {os.path.basename(self.path)}\n")
        return {"sha256": digest, "sha256_file": sha_file, "size": os.path.getsize(self.path), "files": files,
                "missing": missing}

    def project(self, before, steps):
        return {"bundles": sorted(before["bundles"] + [os.path.basename(self.path)])}

    def report(self, before, after, steps):
        result = {"path": self.path, "since": self.since.isoformat()}
        if self.check_mode:
            return dict(result, files=[{"path": path} for path, _read in self.sources])
        return dict(result, **steps[0].outcome)


def _add(tar, name, content):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(content), 0o600, int(time.time())
    tar.addfile(info, io.BytesIO(content))


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
