# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only: describe a certificate (a live endpoint's, a file's, a PEM text's or one a platform stores) and
weigh its days left against a threshold."""

from __future__ import annotations

import os

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._clients import tls
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import ArgumentSpec, platform_argspec
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures._certificates import (
    check_host_name,
    check_port,
)

SOURCES = ("host", "path", "content", "certificate")


class CertCheck(Procedure):
    requirements = (tls.REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                host=dict(type="str"),
                port=dict(type="int", default=443),
                server_name=dict(type="str"),
                path=dict(type="path"),
                content=dict(type="str", no_log=True),
                certificate=dict(type="str"),
                min_days=dict(type="int", default=30),
                fail_on_expiring=dict(type="bool", default=False),
                names=dict(type="list", elements="str", default=[]),
                ca_cert=dict(type="path"),
                timeout=dict(type="int", default=10),
            ),
            mutually_exclusive=[list(SOURCES)],
            required_one_of=[list(SOURCES)],
        )
        return spec.merge(platform_argspec())

    def validate(self):
        p = self.params
        validate.positive(p["min_days"], "min_days", allow_zero=True)
        validate.positive(p["timeout"], "timeout")
        if p["host"] is not None:
            check_host_name(p["host"], "host", allow_ip=True)
            check_port(p["port"], "port")
        if p["server_name"] is not None:
            check_host_name(p["server_name"], "server_name", allow_ip=True)
        for i, name in enumerate(p["names"]):
            check_host_name(name, f"names[{i}]", allow_ip=True, allow_wildcard=True)
        if p["path"] is not None and not os.path.isfile(p["path"]):
            raise ParameterError("path", f"{p['path']!r} is not a file; give a PEM certificate (chain) file")
        if p["content"] is not None and tls.holds_private_key(p["content"]):
            raise ParameterError("content", "holds a private key; give the certificate (chain) only")
        if p["ca_cert"] is not None and not os.path.isfile(p["ca_cert"]):
            raise ParameterError("ca_cert", f"{p['ca_cert']!r} is not a file; give a PEM file of trusted roots")
        self.backend = None
        if p["certificate"] is not None:
            self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))
            names = self.backend.certificate_names()
            if p["certificate"] not in names:
                raise ParameterError("certificate", f"{p['certificate']!r} is not in platform_settings.certificates; "
                                                    f"choose one of {', '.join(names)}")

    def _load(self):
        p = self.params
        if p["host"] is not None:
            where = f"{p['host']}:{p['port']}"
            return f"endpoint {where}", tls.fetch_chain(p["host"], p["port"], p["server_name"] or p["host"],
                                                        p["timeout"])
        if p["path"] is not None:
            try:
                with open(p["path"], "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise RunbookError(f"reading {p['path']} failed: {exc}") from None
            return f"file {p['path']}", tls.load_pem_chain(data, f"path {p['path']}")
        if p["content"] is not None:
            return "content", tls.load_pem_chain(p["content"], "content")
        data = self.backend.read_certificate(p["certificate"])
        if data is None:
            raise RunbookError(f"platform {p['platform']} holds no certificate {p['certificate']} yet; deploy one "
                               "(cert_renew) or check platform_settings.certificates")
        return f"{p['platform']} certificate {p['certificate']}", tls.load_pem_chain(data, p["certificate"])

    def observe(self):
        p = self.params
        source, chain = self._load()
        leaf = tls.facts(chain[0])
        linked, link_error = tls.chain_linked(chain)
        trusted = trust_error = None
        if p["ca_cert"]:
            server_name = p["server_name"] or p["host"] or (leaf["subject_alt_names"] or [None])[0]
            if server_name is None:
                raise ParameterError("server_name", "the certificate names no host; give server_name to verify the "
                                                    "chain against ca_cert")
            trusted, trust_error = tls.chain_trusted(chain, p["ca_cert"], server_name)
        missing = [n for n in p["names"] if not tls.covers(leaf["subject_alt_names"], n)]
        return {
            "source": source,
            "certificate": leaf,
            "chain": [tls.facts(c) for c in chain[1:]],
            "chain_linked": linked,
            "chain_error": link_error or trust_error,
            "chain_trusted": trusted,
            "missing_names": missing,
            "expiring": leaf["days_left"] < p["min_days"],
        }

    def report(self, before, after, steps):
        p = self.params
        leaf = before["certificate"]
        if p["fail_on_expiring"] and before["expiring"]:
            when = "expired" if leaf["days_left"] < 0 else f"expires in {leaf['days_left']} days"
            raise RunbookError(f"certificate of {before['source']} {when} ({leaf['not_after']}), less than min_days "
                               f"{p['min_days']}; renew it (cert_renew)", **_flat(before, p["min_days"]))
        return _flat(before, p["min_days"])


def _flat(state, min_days):
    leaf = state["certificate"]
    return dict(state, min_days=min_days, days_left=leaf["days_left"], not_after=leaf["not_after"],
                fingerprint_sha256=leaf["fingerprint_sha256"], serial_number=leaf["serial_number"],
                issuer=leaf["issuer"], subject_alt_names=leaf["subject_alt_names"])
