# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: TLS certificates the proxy serves from bind-mounted files (cert_check, cert_renew).

``platform_settings.certificates`` names each certificate: ``{site: {cert_file: .../nginx/tls/cert.pem,
key_file: .../nginx/tls/key.pem}}``, optionally with its own ``service`` and ``reload_command`` (default: those of
``platform_settings.proxy``, else ``nginx`` and ``nginx -s reload``). Deploying keeps the replaced pair beside the
files as ``<file>.previous`` (the key 0600), writes each file atomically and reloads the proxy gracefully: nginx
loads the new pair in new workers while the old ones finish their connections.
"""

from __future__ import annotations

import os

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import writes
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

PREVIOUS = ".previous"
DEFAULT_SERVICE = "nginx"
DEFAULT_RELOAD = ["nginx", "-s", "reload"]


class CertificatesMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""

    def certificate_names(self):
        return sorted(self._certificates())

    def _certificates(self):
        certificates = self.settings.get("certificates")
        if not isinstance(certificates, dict) or not certificates:
            raise ParameterError("platform_settings.certificates",
                                 "name at least one certificate as {name: {cert_file: ..., key_file: ...}} (see "
                                 "inventories/compose)")
        return certificates

    def _certificate(self, name):
        certificates = self._certificates()
        if name not in certificates:
            raise ParameterError("certificate", f"{name!r} is not in platform_settings.certificates; choose one of "
                                                f"{', '.join(sorted(certificates))}")
        entry = dict(certificates[name] or {})
        for key in ("cert_file", "key_file"):
            value = entry.get(key)
            if not isinstance(value, str) or not os.path.isabs(value):
                raise ParameterError(f"platform_settings.certificates.{name}.{key}", "must be an absolute path")
        proxy = self.settings.get("proxy") or {}
        entry.setdefault("service", proxy.get("service") or DEFAULT_SERVICE)
        entry.setdefault("reload_command", proxy.get("reload_command") or DEFAULT_RELOAD)
        return entry

    def read_certificate(self, name, previous=False):
        path = self._certificate(name)["cert_file"] + (PREVIOUS if previous else "")
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RunbookError(f"reading certificate {name} from {path} failed: {exc}") from None

    def _read_pair(self, entry):
        pair = {}
        for key in ("cert_file", "key_file"):
            try:
                with open(entry[key]) as f:
                    pair[key] = f.read()
            except FileNotFoundError:
                pair[key] = None
            except OSError as exc:
                raise RunbookError(f"reading {entry[key]} failed: {exc}") from None
        return pair

    def _write_pair(self, entry, pair):
        # The key first, 0600 whatever it was; the certificate keeps its mode (0644 when new).
        for key, mode in (("key_file", 0o600), ("cert_file", 0o644)):
            path = entry[key]
            if pair[key] is None:
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not os.path.exists(path):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
            if key == "key_file":
                os.chmod(path, 0o600)
            self.engine.replace_file(path, pair[key])

    def _reload(self, name, entry):
        try:
            return self.engine.exec_in(entry["service"], entry["reload_command"])
        except RunbookError as exc:
            raise RunbookError(f"certificate {name}: reloading {entry['service']} failed: {exc.msg}") from None

    @writes
    def deploy_certificate(self, name, chain_pem, key_pem):
        entry = self._certificate(name)
        current = self._read_pair(entry)
        if current["cert_file"] is not None and current["key_file"] is not None:
            self._write_pair({k: entry[k] + PREVIOUS for k in ("cert_file", "key_file")}, current)
        self._write_pair(entry, {"cert_file": chain_pem, "key_file": key_pem})
        try:
            reloaded = self._reload(name, entry)
        except RunbookError:
            # The proxy still serves the old pair: put the files back so they say what really happens.
            self._write_pair(entry, current)
            raise
        return {"cert_file": entry["cert_file"], "key_file": entry["key_file"], "reloaded": reloaded,
                "previous_kept": current["cert_file"] is not None}

    @writes
    def restore_previous_certificate(self, name):
        entry = self._certificate(name)
        previous = self._read_pair({k: entry[k] + PREVIOUS for k in ("cert_file", "key_file")})
        if previous["cert_file"] is None or previous["key_file"] is None:
            raise RunbookError(f"certificate {name} has no previous pair ({entry['cert_file']}{PREVIOUS}) to go back "
                               "to; deploy a working certificate by hand")
        self._write_pair(entry, previous)
        return {"cert_file": entry["cert_file"], "reloaded": self._reload(name, entry)}
