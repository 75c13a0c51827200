# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: evidence and cleanup (evidence_collect, cleanup)."""

from __future__ import annotations

import copy
import json
import os

from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.engine import (
    PROJECT_LABEL,
    SERVICE_LABEL,
)
from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.redact import REDACTED, env_secrets

try:
    import docker.errors

    DockerError = docker.errors.DockerException
    NotFound = docker.errors.NotFound
except ImportError:  # ComposeEngine.client reports the missing SDK before any of these is reached
    class DockerError(Exception):
        pass

    class NotFound(DockerError):
        pass

# Where app_rollback records deploys (one JSON file per revision), relative to the project directory.
REVISIONS_DIR = os.path.join(".runbooks", "revisions")
# Exited containers are what cleanup removes; "dead" ones (a failed removal) are as finished.
FINISHED = ("exited", "dead")


def repository_of(reference):
    """``registry:5000/team/app`` of ``registry:5000/team/app:v1`` (or ``...@sha256:...``); None for an image id."""
    name = reference.split("@", 1)[0]
    if name.startswith("sha256:") or not name:
        return None
    head, _sep, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


class HousekeepingMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""

    # -- evidence ---------------------------------------------------------------------------------
    def collect_evidence(self, since, services=None, deploy_history=True):
        engine = self.engine
        for service in services or ():
            engine.require_service(service, "services")
        containers = [c for c in engine.containers() if not services or c.labels.get(SERVICE_LABEL) in services]
        sources = [("compose/ps.txt", lambda: engine.compose("ps", "--all", "--no-trunc", *(services or ())).encode())]
        for c in containers:
            sources += [(f"containers/{c.name}.json", lambda c=c: self._inspect(c)),
                        (f"logs/{c.name}.log", lambda c=c: self._logs(c, since))]
        history = os.path.join(engine.settings["project_dir"], REVISIONS_DIR)
        if deploy_history and os.path.isdir(history):
            for name in sorted(n for n in os.listdir(history) if n.endswith(".json")):
                path = os.path.join(history, name)
                sources.append((f"deploy-history/{name}", lambda path=path: _read(path)))
        return sources

    def _inspect(self, container):
        try:
            container.reload()
        except DockerError as exc:
            raise RunbookError(f"inspecting container {container.name} failed: {exc}") from None
        state = copy.deepcopy(container.attrs)
        # Environment values are where secrets live; the names alone say what was configured.
        config = state.get("Config") or {}
        config["Env"] = [f"{e.split('=', 1)[0]}={REDACTED}" for e in config.get("Env") or []]
        return json.dumps(state, indent=2, sort_keys=True).encode()

    def _logs(self, container, since):
        try:
            # Chunks are joined here; the caller redacts the whole log, so a secret split across chunks is caught.
            # The SDK follows a streamed log unless told not to, which would never end for a running container.
            chunks = container.logs(stream=True, follow=False, since=max(since.timestamp(), 1.0), timestamps=True)
            return b"".join(chunks)
        except DockerError as exc:
            raise RunbookError(f"reading the logs of container {container.name} failed: {exc}") from None

    def known_secrets(self):
        settings = self.engine.settings
        env_file = settings["env_file"] or os.path.join(settings["project_dir"], ".env")
        found = env_secrets(_env_file(env_file)) if os.path.isfile(env_file) else []
        secret_dir = os.path.join(settings["project_dir"], "secrets")
        files = [os.path.join(root, name) for root, _dirs, names in os.walk(secret_dir) for name in names]
        try:
            config = json.loads(self.engine.compose("config", "--format", "json"))
        except (RunbookError, ValueError) as exc:
            # Without the project's secret definitions the evidence could not be redacted safely.
            raise RunbookError(f"compose project {self.engine.project}: reading its configuration for the secrets to "
                               f"redact failed: {getattr(exc, 'msg', exc)}; fix the compose files or "
                               "platform_settings") from None
        for secret in (config.get("secrets") or {}).values():
            if secret.get("file"):
                files.append(secret["file"])
            elif secret.get("environment"):
                found.append(os.environ.get(secret["environment"]))
        for service in (config.get("services") or {}).values():
            found += env_secrets(service.get("environment") or {})
        return found + [_read(path) for path in sorted(set(files)) if os.path.isfile(path)]

    # -- cleanup ----------------------------------------------------------------------------------
    def cleanup_candidates(self, keep_images, scope="project"):
        client = self.engine.client
        try:
            everything = client.containers.list(all=True, ignore_removed=True)
            images = client.images.list()
        except DockerError as exc:
            raise RunbookError(f"listing containers and images failed: {exc}") from None
        in_scope = [c for c in everything if scope == "all" or c.labels.get(PROJECT_LABEL) == self.engine.project]
        finished = sorted((c for c in in_scope if c.status in FINISHED), key=lambda c: c.name)
        removed = {c.id for c in finished}
        # An image is kept while any container on the host, running or stopped, still uses it; containers this
        # run removes no longer count, so a second run finds nothing more to do.
        used = {c.attrs.get("Image") for c in everything if c.id not in removed}
        by_repository = {}
        for image in images:
            for tag in image.tags:  # dangling images have no tags, hence no repository: never candidates
                by_repository.setdefault(repository_of(tag), {}).setdefault(image.id, (image, []))[1].append(tag)
        if scope == "project":
            repositories = _repositories_used(in_scope, images)
            by_repository = {r: v for r, v in by_repository.items() if r in repositories}
        old = []
        for repository, members in sorted(by_repository.items()):
            newest_first = sorted(members.values(), key=lambda m: (_created(m[0]), m[0].id), reverse=True)
            old += [{"id": image.id, "repository": repository, "tags": sorted(tags),
                     "created": image.attrs.get("Created")}
                    for image, tags in newest_first[keep_images:] if image.id not in used]
        return {"containers": [{"id": c.id[:12], "name": c.name, "image": c.attrs.get("Config", {}).get("Image"),
                                "state": c.status, "service": c.labels.get(SERVICE_LABEL)} for c in finished],
                "images": old}

    @writes
    def remove(self, kind, candidate):
        client = self.engine.client
        try:
            if kind == "container":
                client.containers.get(candidate["id"]).remove()
            else:
                # Only this repository's tags: the image itself goes with its last tag, and stays while another
                # repository still names it.
                for tag in candidate["tags"]:
                    try:
                        client.images.remove(tag)
                    except NotFound:
                        pass
        except NotFound:
            return  # already gone: what cleanup wanted
        except DockerError as exc:
            what = candidate.get("name") or f"{candidate['repository']} {candidate['id'][:19]}"
            raise RunbookError(f"removing {kind} {what} failed: {exc}; it was left in place") from None


def _repositories_used(containers, images):
    """Repositories of the images ``containers`` run: by the name they were started with and by every tag of
    their image (a container started from an image id has only the latter)."""
    tags = {image.id: image.tags for image in images}
    found = {repository_of(c.attrs.get("Config", {}).get("Image") or "") for c in containers}
    return found | {repository_of(t) for c in containers for t in tags.get(c.attrs.get("Image"), ())}


def _created(image):
    """An image's creation time as a sortable string: Go trims trailing zeros off the nanoseconds (``.87Z``),
    which would sort after ``.870000001Z``; padded back, strings of one UTC format sort by time."""
    whole, _dot, fraction = (image.attrs.get("Created") or "").rstrip("Z").partition(".")
    return f"{whole}.{fraction:0<9}"


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise RunbookError(f"reading {path} failed: {exc}") from None


def _env_file(path):
    """``NAME=value`` lines of a Compose env file (comments, ``export`` and quotes as Compose reads them)."""
    env = {}
    for line in _read(path).decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[name.strip()] = value
    return env
