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
    "self_managed": ("self_managed", "SelfManagedBackend"),
}


def _shipped_backends():
    """Never called. AnsiballZ only packs the module_utils it sees imported, and ``select_backend`` imports by
    name, so every backend of ``_REGISTRY`` is imported here too or a real module run cannot find it."""
    from ansible_collections.ops.runbooks.plugins.module_utils._backends import self_managed  # noqa: F401


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


def select_backend(platform, settings=None, check_mode=False):
    if platform not in _REGISTRY:
        raise ParameterError("platform", f"unknown platform {platform!r}; choose one of {available_platforms()}")
    module_name, class_name = _REGISTRY[platform]
    module = importlib.import_module(f"ansible_collections.ops.runbooks.plugins.module_utils._backends.{module_name}")
    return getattr(module, class_name)(settings=settings, check_mode=check_mode)
