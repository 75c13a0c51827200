# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The platform backend interface and ``select_backend``.

Procedures are platform-neutral; a backend knows how one platform restarts, scales, switches traffic or
promotes. A backend module is imported only when selected, so a platform SDK is only needed where that
platform is used. Adding a platform means adding one file here and one line to ``_REGISTRY``.
"""

from __future__ import annotations

import functools
import importlib

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

# platform name -> (module under _backends, class name). Only shipped backends are listed, so the
# ``platform`` option's choices never offer something that cannot run. Add new ones to _shipped_backends too.
_REGISTRY = {
    "compose": ("compose", "ComposeBackend"),
    "k8s": ("k8s", "K8sBackend"),
    "self_managed": ("self_managed", "SelfManagedBackend"),
}


def _shipped_backends():
    """Never called. AnsiballZ only packs the module_utils it sees imported, and ``select_backend`` imports by
    name, so every backend of ``_REGISTRY`` is imported here too or a real module run cannot find it."""
    from ansible_collections.ops.runbooks.plugins.module_utils._backends import (  # noqa: F401
        compose,
        k8s,
        self_managed,
    )


def available_platforms():
    return sorted(_REGISTRY)


def writes(method):
    """Mark a backend method that changes the platform; it refuses to run in check mode.

    Procedures already skip apply in check mode; this is the second lock, at the only place that writes.
    """

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        if self.check_mode:
            raise RunbookError(f"{self.platform}: {method.__name__} refused in check mode (nothing was changed)")
        return method(self, *args, **kwargs)

    guarded.writes = True
    return guarded


def write_methods(backend_cls):
    return sorted(name for name in dir(backend_cls) if getattr(getattr(backend_cls, name), "writes", False))


class Backend:
    """What a platform can do. A capability a platform lacks raises RunbookError naming it."""

    platform = None

    def __init__(self, settings=None, check_mode=False):
        self.settings = dict(settings or {})
        self.check_mode = check_mode

    def unsupported(self, capability):
        return RunbookError(f"platform {self.platform!r} cannot {capability}; use a platform that supports it",
                            platform=self.platform)

    def close(self):
        """Release platform clients (procedures register the backend with ``own``)."""

    # Database capabilities ------------------------------------------------------------------------
    def promote_standby(self, standby, timeout):
        """Make the standby reachable through ``standby`` (a PostgresClient) a writable primary.

        Returns a dict with at least ``method``. Must only be called outside check mode.
        """
        raise NotImplementedError

    def promote_plan(self, standby, timeout):
        """What ``promote_standby`` would run (SQL statements or API calls), as text, for check mode."""
        raise NotImplementedError

    def fence_primary(self, primary, timeout=30):
        """Stop the old primary from accepting writes. Returns a dict describing what was done."""
        raise NotImplementedError

    def fence_plan(self, primary):
        """What ``fence_primary`` would run, as text, for check mode."""
        raise NotImplementedError

    def unfence_primary(self, primary):
        """Undo ``fence_primary`` (rollback when the promotion did not happen). Returns what was run."""
        raise NotImplementedError

    # Application capabilities ---------------------------------------------------------------------
    # A "service" is what the platform scales and restarts as a unit (a Compose service, a Deployment, an
    # App Service slot); a "replica" is one running instance of it (a container, a pod, an instance).
    # Write methods are marked @writes in the implementations.

    # replicas: app_restart, app_scale, health_check
    def replicas(self, service):
        """Running and stopped replicas: [{id, name, state, health, image, started_at}], sorted by name.

        ``health`` is 'healthy', 'unhealthy', 'starting' or None when the platform has no health check.
        Raises RunbookError naming ``service`` when the platform has no such service.
        """
        raise self.unsupported("list replicas")

    @staticmethod
    def serving(replica):
        """A replica of ``replicas()`` that runs and passes its health check (or has none)."""
        return replica["state"] == "running" and replica["health"] in ("healthy", None)

    def restart_replica(self, service, replica_id, stop_timeout=None):
        """Restart one replica gracefully: stop signal, up to ``stop_timeout`` seconds (None: the platform's or
        service's grace period) to finish requests in flight, then start. Returns the id of the replica that
        replaces it (may be the same). Does not wait for it to become healthy: callers poll ``replicas``."""
        raise self.unsupported("restart a replica")

    def desired_replicas(self, service):
        """How many replicas the platform keeps for ``service`` (running or not)."""
        raise self.unsupported("read the replica count")

    def scale(self, service, count):
        """Set the replica count to ``count`` (>= 0) and return without waiting for health; existing healthy
        replicas are kept."""
        raise self.unsupported("scale")

    # A platform with its own rolling update (a Kubernetes Deployment) restarts a service as one rollout instead
    # of replica by replica; app_restart then uses the three methods below instead of ``restart_replica``, and
    # app_rollback waits for ``rollout_status`` too.
    rollouts = False

    def restart_rollout(self, service):
        """Start replacing every replica of ``service`` by the platform's rolling update; returns a token for
        ``undo_restart``. Does not wait: callers poll ``rollout_status``."""
        raise self.unsupported("restart by rollout")

    def rollout_status(self, service):
        """``(complete, message)``: complete when every replica runs the newest revision and is available."""
        raise self.unsupported("report a rollout")

    def undo_restart(self, service, token):
        """Return ``service`` to the revision it ran before ``restart_rollout`` returned ``token``."""
        raise self.unsupported("undo a restart")

    # autoscaling: app_scale
    def autoscaling(self, service):
        """The autoscaler of ``service``: {min_replicas, max_replicas, target_cpu_utilization}, None without."""
        raise self.unsupported("autoscale")

    def set_autoscaling(self, service, wanted):
        """Create or update the autoscaler of ``service`` to ``wanted`` (the shape ``autoscaling`` returns)."""
        raise self.unsupported("autoscale")

    # traffic: traffic_switch
    def slots(self):
        """{slot name: service} of the blue/green slots. Reads settings only (safe in ``validate()``)."""
        raise self.unsupported("list traffic slots")

    def active_slot(self):
        """The name of the slot that receives public traffic now."""
        raise self.unsupported("read the active slot")

    def switch_slot(self, slot):
        """Send public traffic to ``slot`` without dropping connections; returns a description of what was done."""
        raise self.unsupported("switch traffic")

    def verify_slot(self, slot, timeout):
        """Wait (at most ``timeout`` seconds) until the platform's own routing serves ``slot``; raise RunbookError
        when it does not. Returns what was seen, or None on a platform with nothing more to check than
        ``active_slot``."""
        return None

    # revisions: app_rollback
    # A revision is {id, image, image_id, config, recorded_at}: ``config`` holds the (non-secret) settings that
    # define it besides the image, ``id`` is a fingerprint of image_id + config.
    def current_revision(self, service):
        """The revision the service runs now (``recorded_at`` None)."""
        raise self.unsupported("read the current revision")

    def revision_history(self, service):
        """Recorded revisions, newest first: a log of deployments, so a revision may appear more than once."""
        raise self.unsupported("read the revision history")

    def record_revision(self, service, revision):
        """Append ``revision`` to the history unless it is the newest entry already; returns True when appended."""
        raise self.unsupported("record a revision")

    def require_deployable(self, service, revision):
        """Raise RunbookError when ``revision`` cannot be deployed (its image is gone); changes nothing."""
        raise self.unsupported("deploy a revision")

    def deploy_revision(self, service, revision):
        """Make ``service`` run ``revision`` (image and config); returns without waiting for health."""
        raise self.unsupported("deploy a revision")

    # housekeeping: evidence_collect, cleanup
    def collect_evidence(self, since, services=None, deploy_history=True):
        """Platform evidence since ``since`` (an aware datetime): logs, replica states, the platform's own status
        view and, with ``deploy_history``, recorded deploys. ``services`` None means all.

        Returns ``[(relative path, read)]`` without reading anything yet, so check mode can list it; ``read()``
        returns the file's whole content as bytes, NOT redacted (the caller redacts the assembled content).
        """
        raise self.unsupported("collect evidence")

    def known_secrets(self):
        """Secret values the platform's configuration holds (env and secret files): evidence must never show them."""
        raise self.unsupported("list its secret values")

    def cleanup_candidates(self, keep_images, scope="project"):
        """What cleanup would remove: {containers: [{id, name, image, state}], images: [{id, repository, tags,
        created}]}. ``scope`` 'project' limits both to the project, 'all' takes the whole host."""
        raise self.unsupported("list cleanup candidates")

    def remove(self, kind, candidate):
        """Remove one candidate (``kind`` 'container' or 'image') of ``cleanup_candidates``."""
        raise self.unsupported("remove resources")

    # certificates: cert_check, cert_renew
    # A certificate is named as ``platform_settings.certificates`` names it; the platform keeps its chain (PEM,
    # leaf first) and private key where the server reads them, and the pair it replaced as the previous one.
    def certificate_names(self):
        """Names of the certificates the platform settings describe. Reads settings only (safe in ``validate()``)."""
        raise self.unsupported("manage TLS certificates")

    def read_certificate(self, name, previous=False):
        """The deployed chain of ``name`` as PEM bytes (with ``previous``, the one it replaced), None when none is.
        Never the private key."""
        raise self.unsupported("read TLS certificates")

    def deploy_certificate(self, name, chain_pem, key_pem):
        """Install ``chain_pem`` and ``key_pem`` (text) as ``name``, keeping the pair they replace as the previous
        one, and make the server use them without dropping connections. Returns a description (no key material)."""
        raise self.unsupported("deploy TLS certificates")

    def restore_previous_certificate(self, name):
        """Put the previous pair of ``name`` back and make the server use it (rollback). Returns a description."""
        raise self.unsupported("deploy TLS certificates")

    # secret store: secret_rotate
    # Entries are named as the platform names them (a Compose secret, a key of a Kubernetes Secret, a Key Vault
    # secret). ``staged`` entries sit beside a live one while a rotation runs (``pending``: the new value before
    # consumers see it; ``prior``: the old value until it is retired) and are never read by consumers. Values are
    # str; they must never reach a result, a message or a log.
    def read_secret(self, name, staged=None):
        """The value of entry ``name`` (or of its ``staged`` companion), None when there is none."""
        raise self.unsupported("read its secret store")

    def write_secret(self, name, value, staged=None):
        """Replace the value of ``name`` (or of its ``staged`` companion) atomically, readable by the platform only
        (Compose: a file of mode 0600). Consumers see it when they are restarted."""
        raise self.unsupported("write its secret store")

    def remove_staged_secret(self, name, staged):
        """Remove the ``staged`` companion of ``name``; nothing when there is none."""
        raise self.unsupported("write its secret store")

    def read_setting(self, name):
        """A non-secret value consumers read beside their secrets (the login role to use), None when unset."""
        raise self.unsupported("read consumer settings")

    def write_setting(self, name, value):
        """Replace the non-secret value ``name`` consumers read when they are restarted."""
        raise self.unsupported("write consumer settings")

    def read_rotation_state(self, name):
        """The recorded state of rotation ``name`` (a dict of phases, versions and fingerprints), None when none."""
        raise self.unsupported("record rotation state")

    def write_rotation_state(self, name, state):
        """Record ``state`` of rotation ``name`` durably (it must survive the process being killed right after)."""
        raise self.unsupported("record rotation state")

    def rotation_lock(self, name):
        """A context manager held while rotation ``name`` changes anything, so two runs never interleave."""
        raise self.unsupported("record rotation state")

    def replica_get(self, service, port, path, timeout=10):
        """GET ``path`` on ``port`` of every running replica of ``service``, each reached directly, not through the
        proxy: ``[{replica, status, body}]`` (``status`` None and ``error`` set when it could not be asked)."""
        raise self.unsupported("reach single replicas")


def select_backend(platform, settings=None, check_mode=False):
    if platform not in _REGISTRY:
        raise ParameterError("platform", f"unknown platform {platform!r}; choose one of {available_platforms()}")
    module_name, class_name = _REGISTRY[platform]
    module = importlib.import_module(f"ansible_collections.ops.runbooks.plugins.module_utils._backends.{module_name}")
    return getattr(module, class_name)(settings=settings, check_mode=check_mode)
