# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: the secret store and rotation state (secret_rotate).

A secret is a file named by the project's ``secrets:`` section (``secrets: {db_app_password: {file: ...}}``); a
setting is a file named by its ``configs:`` section. Compose without swarm bind-mounts both into the containers
by path when a container starts, so a replaced file reaches a consumer when that consumer is restarted.
Files are rewritten in place (see ``_write_private``). Staged values (``pending``, ``prior``) are hidden files
beside the secret's file (``.db_app_password.pending``),
mode 0600 like it, never mounted anywhere. Rotation state is ``<project_dir>/.runbooks/rotations/<name>.json``
(mode 0600): phases, versions and fingerprints, never a value.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError

ROTATIONS_DIR = os.path.join(".runbooks", "rotations")
STAGES = ("pending", "prior")


class SecretStoreMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""

    def _project_config(self):
        if getattr(self, "_config_cache", None) is None:
            try:
                self._config_cache = json.loads(self.engine.compose("config", "--format", "json"))
            except ValueError as exc:
                raise RunbookError(f"compose project {self.engine.project}: `docker compose config` is not JSON: "
                                   f"{exc}") from None
        return self._config_cache

    def _entry_file(self, section, name):
        entry = (self._project_config().get(section) or {}).get(name) or {}
        if not entry.get("file"):
            declared = ", ".join(sorted(self._project_config().get(section) or {})) or "none"
            raise RunbookError(f"compose project {self.engine.project} declares no file-based {section[:-1]} "
                               f"{name!r} ({section}: {declared}); add it to the compose file's {section}: section",
                               parameter=section[:-1])
        return entry["file"]

    def _secret_file(self, name, staged=None):
        path = self._entry_file("secrets", name)
        if staged is None:
            return path
        if staged not in STAGES:
            raise ValueError(f"unknown staged entry {staged!r}")
        return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{staged}")

    def read_secret(self, name, staged=None):
        return _read_text(self._secret_file(name, staged))

    @writes
    def write_secret(self, name, value, staged=None):
        _write_file(self._secret_file(name, staged), value)

    @writes
    def remove_staged_secret(self, name, staged):
        path = self._secret_file(name, staged)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def read_setting(self, name):
        return _read_text(self._entry_file("configs", name))

    @writes
    def write_setting(self, name, value):
        _write_file(self._entry_file("configs", name), f"{value}\n", mode=0o644)

    # -- rotation state ------------------------------------------------------------------------------
    def _rotations_dir(self):
        return os.path.join(self.engine.settings["project_dir"], ROTATIONS_DIR)

    def read_rotation_state(self, name):
        path = os.path.join(self._rotations_dir(), f"{name}.json")
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RunbookError(f"reading the rotation state {path} failed: {exc}; move the file away only after "
                               "checking by hand which credential the consumers use") from None

    @writes
    def write_rotation_state(self, name, state):
        directory = self._rotations_dir()
        for d in (os.path.dirname(directory), directory):
            os.makedirs(d, mode=0o700, exist_ok=True)
        _write_file(os.path.join(directory, f"{name}.json"), json.dumps(state, indent=1, sort_keys=True) + "\n",
                    in_place=False)

    @contextlib.contextmanager
    def rotation_lock(self, name):
        directory = self._rotations_dir()
        for d in (os.path.dirname(directory), directory):
            os.makedirs(d, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(directory, f"{name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunbookError(f"rotation {name} is running in another process (lock {directory}/{name}.lock); "
                                   "wait for it to finish") from None
            yield
        finally:
            os.close(fd)

    # -- consumers -----------------------------------------------------------------------------------
    def replica_get(self, service, port, path, timeout=10):
        self._require_declared(service)
        answers = []
        for container in self.engine.containers(service, all=False):
            networks = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
            address = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None)
            answer = {"replica": container.name, "status": None, "body": None}
            if address is None:
                answers.append(dict(answer, error="no IP address on any network"))
                continue
            conn = http.client.HTTPConnection(address, port, timeout=timeout)
            try:
                conn.request("GET", path, headers={"Connection": "close"})
                response = conn.getresponse()
                answer.update(status=response.status, body=response.read(1 << 20).decode("utf-8", "replace"))
            except (OSError, http.client.HTTPException) as exc:
                answer["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                conn.close()
            answers.append(answer)
        return answers


def _read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunbookError(f"reading {path} failed: {exc}") from None


def _write_file(path, text, mode=0o600, in_place=True):
    """Write ``text`` to a file of ``mode`` (whatever the umask), fsynced.

    With ``in_place``, an existing file is rewritten in place, keeping its inode: Compose bind-mounts a secret's
    file into the containers, and a file renamed over it (a new inode) would stay invisible to the containers
    already running, such as a server whose health check reads the secret. Otherwise (and for a new file) the
    content is written to a temporary file renamed over ``path``, so a kill leaves the old or the new content,
    never half of it.
    """
    if in_place and os.path.exists(path):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.fchmod(fd, mode)
            data = text.encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
