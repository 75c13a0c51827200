# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probes: is a target healthy? Used by the ``health_check`` module (many targets) and by the ``verify`` option
of every module that changes something (doc fragment ``verify``).

A target is a dict with a ``type`` and that type's fields. Adding a target type (a Compose service, a
Kubernetes deployment) means adding one Probe subclass in its own file and naming it in ``PROBE_TYPES``;
its fields join the ``verify``/``targets`` sub-options and must be documented in the ``verify`` fragment.
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.command import CommandProbe
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.compose import ComposeServiceProbe
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.http import HttpProbe
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.k8s import K8sDeploymentProbe
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.postgres import PostgresProbe
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.redis import RedisProbe
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.runner import check_targets
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.tcp import TcpProbe
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.tls import TlsProbe
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

__all__ = ["PROBE_TYPES", "probe_options", "parse_targets", "hide_secrets", "check_targets", "summarize",
           "Verification", "run_verification"]

PROBE_TYPES = {
    cls.type: cls
    for cls in (HttpProbe, TcpProbe, PostgresProbe, RedisProbe, TlsProbe, ComposeServiceProbe, CommandProbe,
                K8sDeploymentProbe)
}

# Fields every type takes; handled by Probe.__init__.
COMMON_OPTIONS = dict(
    name=dict(type="str"),
    type=dict(type="str"),
    retries=dict(type="int"),
    retry_delay=dict(type="raw"),
    max_latency=dict(type="raw"),
)
DEFAULT_CONCURRENCY = 50
DEFAULT_VERIFY_TIMEOUT = 60
DEFAULT_RETRY_DELAY = 1.0


def probe_options():
    """Ansible sub-options of one target: the union of every type's fields (each type rejects the others')."""
    options = {k: dict(v) for k, v in COMMON_OPTIONS.items()}
    for cls in PROBE_TYPES.values():
        for name, spec in cls.options.items():
            if options.setdefault(name, dict(spec)) != spec:
                raise TypeError(f"probe field {name!r} of type {cls.type} clashes with another type's definition")
    return options


def parse_targets(targets, param, retries=None, retry_delay=DEFAULT_RETRY_DELAY):
    """Validate ``targets`` (the value of option ``param``) and return one Probe each. Contacts nothing.

    Raises ParameterError naming the field, such as ``targets[2].url``.
    """
    probes = []
    for i, target in enumerate(targets or []):
        where = f"{param}[{i}]"
        kind = target.get("type")
        if kind not in PROBE_TYPES:
            problem = "required" if kind is None else f"unknown type {kind!r}"
            raise ParameterError(f"{where}.type", f"{problem}; choose one of {', '.join(sorted(PROBE_TYPES))}")
        cls = PROBE_TYPES[kind]
        foreign = sorted(k for k, v in target.items()
                         if v is not None and k not in COMMON_OPTIONS and k not in cls.options)
        if foreign:
            raise ParameterError(f"{where}.{foreign[0]}", f"not a field of type {kind}, which takes "
                                                          f"{', '.join(sorted(cls.options))}")
        if cls.requirement and not cls.requirement[1]:
            raise RunbookError(f"{where}: {missing_required_lib(cls.requirement[0])}", exception=cls.requirement[2])
        probes.append(cls(target, where, retries, retry_delay))
    return probes


def hide_secrets(module, probes):
    """Mask secrets that are not no_log options (a password inside a URL, an Authorization header) everywhere
    in the task's output, ``invocation`` included, as Ansible does for no_log values."""
    module.no_log_values.update(s for p in probes for s in p.secrets())


def summarize(report, limit=5):
    """``api (status 503, ...), cache (timeout...)`` for the first failed targets of a report."""
    failed = [t for t in report["targets"] if not t["ok"]]
    text = ", ".join(f"{t['name']} ({t['error']})" for t in failed[:limit])
    return text + (f" and {len(failed) - limit} more" if len(failed) > limit else "")


class Verification:
    """The ``verify`` and ``verify_timeout`` options of a module that changes something.

    Create it in ``Procedure.validate()`` so bad probes fail before anything changes, and call ``run()`` in
    ``Procedure.verify()``. Each probe is retried every ``retry_delay`` until it passes or ``verify_timeout``
    passes, unless it sets its own ``retries``. A failure raises RunbookError, so the procedure rolls back.
    """

    def __init__(self, params, module=None, param="verify"):
        self.param = param
        self.probes = parse_targets(params.get(param), param)
        timeout = validate.duration_seconds(params.get(f"{param}_timeout"), f"{param}_timeout")
        self.timeout = validate.positive(DEFAULT_VERIFY_TIMEOUT if timeout is None else timeout, f"{param}_timeout")
        if module is not None:
            hide_secrets(module, self.probes)

    def run(self):
        """Return the report (None without probes); raise RunbookError with every probe's result on failure."""
        if not self.probes:
            return None
        report = check_targets(self.probes, self.timeout, DEFAULT_CONCURRENCY)
        if not report["healthy"]:
            raise RunbookError(
                f"verification failed after the change: {report['counts']['failed']} of {report['counts']['total']} "
                f"probes failed: {summarize(report)}; fix the target or the probe ({self.param}), or raise "
                f"{self.param}_timeout if it needs longer to become healthy",
                verification=report,
            )
        return report


def run_verification(verify, timeout=None):
    """One call for ``Procedure.verify()``: ``run_verification(self.params["verify"], self.params["verify_timeout"])``.

    Validates too, but only ``Verification`` created in ``validate()`` catches bad probes before the change.
    """
    return Verification({"verify": verify, "verify_timeout": timeout}).run()
