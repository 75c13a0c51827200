# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker Engine (through the Docker SDK) and Compose v2 (its CLI plugin) for one Compose project.

The only place the compose backend talks to Docker; its capability mixins (replicas, traffic, revisions,
housekeeping) go through ``ComposeEngine``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

try:
    import docker
    import docker.errors

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"


def compose_settings(settings):
    """Check the compose ``platform_settings`` before anything is touched; returns them with defaults."""
    s = dict(settings or {})
    for key in ("project_name", "project_dir"):
        if not s.get(key):
            raise ParameterError(f"platform_settings.{key}", "required for platform compose (see inventories/compose)")
    if not os.path.isdir(s["project_dir"]):
        raise ParameterError("platform_settings.project_dir", f"{s['project_dir']!r} is not a directory")
    s.setdefault("docker_host", os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    s.setdefault("files", [])
    s.setdefault("env_file", None)
    s.setdefault("command_timeout", 300)
    return s


class ComposeEngine:
    def __init__(self, settings):
        self.settings = compose_settings(settings)
        self.project = self.settings["project_name"]
        self._client = None

    # -- Docker SDK ------------------------------------------------------------------------------
    @property
    def client(self):
        if not HAS_DOCKER:
            raise RunbookError("the compose platform needs the Python package 'docker' (Docker SDK for Python)",
                               exception=DOCKER_IMPORT_ERROR)
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self.settings["docker_host"], timeout=60)
                self._client.ping()
            except docker.errors.DockerException as exc:
                raise RunbookError(f"Docker Engine at {self.settings['docker_host']} is not answering: {exc}; "
                                   "check platform_settings.docker_host and that dockerd runs") from None
        return self._client

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def containers(self, service=None, all=True):
        labels = [f"{PROJECT_LABEL}={self.project}"]
        if service:
            labels.append(f"{SERVICE_LABEL}={service}")
        try:
            found = self.client.containers.list(all=all, filters={"label": labels})
        except docker.errors.APIError as exc:
            raise RunbookError(f"compose project {self.project}: listing containers failed: {exc}") from None
        return sorted(found, key=lambda c: c.name)

    def services(self):
        return sorted({c.labels.get(SERVICE_LABEL) for c in self.containers()} - {None})

    def require_service(self, service, param="service"):
        if service not in self.services():
            raise RunbookError(f"compose project {self.project} has no service {service!r} "
                               f"(services: {', '.join(self.services()) or 'none'}); check {param}")

    @staticmethod
    def describe(container):
        state = container.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status")
        return {
            "id": container.id[:12],
            "name": container.name,
            "service": container.labels.get(SERVICE_LABEL),
            "number": int(container.labels.get(NUMBER_LABEL, "0") or 0),
            "state": state.get("Status"),
            "health": health,
            "image": container.attrs.get("Config", {}).get("Image"),
            "image_id": container.attrs.get("Image"),
            "started_at": state.get("StartedAt"),
        }

    # -- Compose CLI -----------------------------------------------------------------------------
    def compose_argv(self, *args):
        docker_cli = shutil.which("docker")
        if docker_cli is None:
            raise RunbookError("the docker CLI with the Compose v2 plugin is not on PATH of the managed host")
        argv = [docker_cli, "compose", "--project-name", self.project, "--project-directory",
                self.settings["project_dir"]]
        for f in self.settings["files"]:
            argv += ["--file", os.path.join(self.settings["project_dir"], f)]
        if self.settings["env_file"]:
            argv += ["--env-file", self.settings["env_file"]]
        return argv + list(args)

    def compose(self, *args, timeout=None):
        """Run ``docker compose ...`` for the project; returns stdout. Raises RunbookError with stderr."""
        argv = self.compose_argv(*args)
        env = dict(os.environ, DOCKER_HOST=self.settings["docker_host"])
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env,
                                  timeout=timeout or self.settings["command_timeout"], check=False)
        except subprocess.TimeoutExpired:
            raise RunbookError(f"docker compose {' '.join(args)} did not finish within "
                               f"{timeout or self.settings['command_timeout']}s") from None
        if done.returncode != 0:
            raise RunbookError(f"docker compose {' '.join(args)} failed (exit {done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}")
        return done.stdout

    # -- helpers for traffic and revisions -------------------------------------------------------------
    def exec_in(self, service, argv):
        """Run ``argv`` in every running container of ``service`` (Docker SDK exec); returns their names.

        Raises RunbookError with the command's output when it fails anywhere."""
        done = []
        for container in self.containers(service, all=False):
            try:
                code, output = container.exec_run(list(argv), demux=False)
            except docker.errors.APIError as exc:
                raise RunbookError(f"{container.name}: running {' '.join(argv)} failed: {exc}") from None
            if code != 0:
                text = (output or b"").decode("utf-8", "replace").strip()[-2000:]
                raise RunbookError(f"{container.name}: {' '.join(argv)} exited {code}: {text}")
            done.append(container.name)
        if not done:
            raise RunbookError(f"compose project {self.project}: service {service!r} has no running container to "
                               f"run {' '.join(argv)} in; start it (docker compose up -d {service})")
        return done

    def image_id(self, reference):
        """The id of the local image ``reference`` (a name:tag or an id), None when there is no such image."""
        try:
            return self.client.images.get(reference).id
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            raise RunbookError(f"inspecting image {reference!r} failed: {exc}") from None

    @staticmethod
    def replace_file(path, text):
        """Write ``text`` to ``path`` atomically (a temporary file in the same directory renamed over it), keeping
        the file's mode, so a reader (nginx, docker compose) never sees half a file."""
        directory = os.path.dirname(os.path.abspath(path))
        mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o600
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # -- added for the replicas capability (app_restart, app_scale) ------------------------------
    def declared_services(self):
        """Services the project's Compose files declare (``compose config --services``), read once per run.

        Unlike ``services()`` it knows a service scaled to zero.
        """
        if getattr(self, "_declared_services", None) is None:
            self._declared_services = sorted(self.compose("config", "--services").split())
        return self._declared_services
