# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: blue/green slots behind the proxy (traffic_switch).

The proxy (nginx) sends public traffic to the service named in one line of ``proxy.active_slot_file``
(``set $active_slot app_green;``), a file it reads from a bind-mounted directory. Switching rewrites that line
atomically and reloads the proxy: nginx starts new workers with the new file and lets the old ones finish the
requests they are serving, so no connection is dropped.
"""

from __future__ import annotations

import re

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

_ACTIVE = re.compile(r"^(\s*set\s+\$active_slot\s+)([A-Za-z0-9_.-]+)(\s*;)", re.MULTILINE)
DEFAULT_RELOAD = ["nginx", "-s", "reload"]


class TrafficMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""

    def slots(self):
        slots = self.settings.get("slots")
        if not isinstance(slots, dict) or len(slots) < 2 or not all(isinstance(v, str) for v in slots.values()):
            raise ParameterError("platform_settings.slots", "needs at least two slots as {slot name: compose "
                                                            "service}, for example {blue: app_blue, green: app_green}")
        return dict(slots)

    def _proxy(self):
        proxy = dict(self.settings.get("proxy") or {})
        for key in ("service", "active_slot_file"):
            if not proxy.get(key):
                raise ParameterError(f"platform_settings.proxy.{key}", "required to switch traffic (see "
                                                                       "inventories/compose)")
        proxy.setdefault("reload_command", DEFAULT_RELOAD)
        return proxy

    def _read_active(self):
        path = self._proxy()["active_slot_file"]
        try:
            with open(path) as f:
                text = f.read()
        except OSError as exc:
            raise RunbookError(f"reading the active slot file {path} failed: {exc}; check "
                               "platform_settings.proxy.active_slot_file") from None
        found = _ACTIVE.findall(text)
        if len(found) != 1:
            raise RunbookError(f"{path} must hold exactly one line 'set $active_slot <service>;', found {len(found)}; "
                               "fix the file by hand")
        return path, text, found[0][1]

    def active_slot(self):
        path, _text, service = self._read_active()
        by_service = {v: k for k, v in self.slots().items()}
        if service not in by_service:
            raise RunbookError(f"{path} sends traffic to {service!r}, which is not a slot of platform_settings.slots "
                               f"({', '.join(f'{k}: {v}' for k, v in self.slots().items())}); fix one of them")
        return by_service[service]

    @writes
    def switch_slot(self, slot):
        proxy = self._proxy()
        path, text, old_service = self._read_active()
        service = self.slots()[slot]
        self.engine.replace_file(path, _ACTIVE.sub(lambda m: f"{m.group(1)}{service}{m.group(3)}", text))
        try:
            reloaded = self.engine.exec_in(proxy["service"], proxy["reload_command"])
        except RunbookError:
            # The proxy still serves the old slot: put the file back so it says what really happens.
            self.engine.replace_file(path, text)
            raise
        return {"file": path, "from": old_service, "to": service, "reloaded": reloaded}
