# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renew a TLS certificate through ACME when it is due, deploy it where the platform serves it, prove the
endpoint serves it, and go back to the previous certificate when it does not."""

from __future__ import annotations

import os

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._clients import acme as acmeclient
from ansible_collections.ops.runbooks.plugins.module_utils._clients import dns as dnsclient
from ansible_collections.ops.runbooks.plugins.module_utils._clients import tls
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes import Verification
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    platform_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step
from ansible_collections.ops.runbooks.plugins.module_utils._procedures._certificates import (
    check_host_name,
    check_https_url,
    check_port,
)

DEFAULT_ACME_TIMEOUT = 300
# New connections in a row that must get the new certificate before it counts as served.
VERIFY_STREAK = 3


class CertRenew(Procedure):
    requirements = (tls.REQUIREMENT, acmeclient.REQUIREMENT, dnsclient.REQUIREMENT)

    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                certificate=dict(type="str", required=True),
                domains=dict(type="list", elements="str", required=True),
                renew_before_days=dict(type="int", default=30),
                force=dict(type="bool", default=False),
                acme_directory=dict(type="str", required=True),
                acme_ca_cert=dict(type="path"),
                acme_timeout=dict(type="raw", default=DEFAULT_ACME_TIMEOUT),
                account_key_src=dict(type="path", no_log=False),
                account_key_content=dict(type="str", no_log=True),
                account_email=dict(type="str"),
                terms_agreed=dict(type="bool", default=False),
                key_type=dict(type="str", default="ec256", choices=tls.KEY_TYPES, no_log=False),
                challenge=dict(type="str", default="dns-01", choices=["dns-01"]),
                dns=dict(type="dict", required=True, options=dict(
                    provider=dict(type="str", default="rfc2136", choices=sorted(dnsclient.PROVIDERS)),
                    server=dict(type="str", required=True),
                    port=dict(type="int", default=53),
                    zone=dict(type="str", required=True),
                    key_name=dict(type="str"),
                    key_secret=dict(type="str", no_log=True),
                    key_algorithm=dict(type="str", default="hmac-sha256", choices=dnsclient.TSIG_ALGORITHMS),
                    timeout=dict(type="int", default=10),
                    ttl=dict(type="int", default=60),
                    propagation_timeout=dict(type="raw", default=60),
                ), required_together=[["key_name", "key_secret"]]),
                endpoint=dict(type="dict", options=dict(
                    host=dict(type="str", required=True),
                    port=dict(type="int", default=443),
                    server_name=dict(type="str"),
                )),
            ),
            mutually_exclusive=[["account_key_src", "account_key_content"]],
            required_one_of=[["account_key_src", "account_key_content"]],
        )
        return spec.merge(platform_argspec()).merge(verify_argspec())

    # -- input ---------------------------------------------------------------------------------------
    def validate(self):
        p = self.params
        self.verify_probes = Verification(p, self.module)
        self.verify_timeout = self.verify_probes.timeout
        validate.positive(p["renew_before_days"], "renew_before_days", allow_zero=True)
        self.acme_timeout = validate.positive(validate.duration_seconds(p["acme_timeout"], "acme_timeout"),
                                              "acme_timeout")
        check_https_url(p["acme_directory"], "acme_directory")
        if p["acme_ca_cert"] is not None and not os.path.isfile(p["acme_ca_cert"]):
            raise ParameterError("acme_ca_cert", f"{p['acme_ca_cert']!r} is not a file; give the PEM CA file that "
                                                 "signed the ACME server's HTTPS certificate")
        if p["account_email"] is not None and (not p["account_email"].count("@") == 1
                                               or any(c.isspace() or c in "<>;," for c in p["account_email"])):
            raise ParameterError("account_email", f"{p['account_email']!r} is not an e-mail address")
        self.account_key_pem = self._account_key()
        self.dns = self._dns()
        self.domains = self._domains()
        self.endpoint = self._endpoint()
        self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))
        names = self.backend.certificate_names()
        if p["certificate"] not in names:
            raise ParameterError("certificate", f"{p['certificate']!r} is not in platform_settings.certificates; "
                                                f"choose one of {', '.join(names)}")
        self.new_chain = self.new_key_pem = self.account_uri = self.verify_seconds = None
        self.leftovers = []

    def _account_key(self):
        p = self.params
        if p["account_key_src"] is not None:
            try:
                with open(p["account_key_src"], "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise ParameterError("account_key_src", f"cannot read the ACME account key: {exc.strerror}") from None
            where = "account_key_src"
        else:
            data, where = p["account_key_content"].encode(), "account_key_content"
        self.module.no_log_values.add(data.decode("utf-8", "replace").strip())
        try:
            tls.load_private_key(data, where)
        except RunbookError as exc:
            raise ParameterError(where, exc.msg.split(" is ", 1)[-1]) from None
        return data

    def _dns(self):
        d = dict(self.params["dns"])
        check_host_name(d["server"], "dns.server", allow_ip=True)
        check_port(d["port"], "dns.port")
        check_host_name(d["zone"], "dns.zone")
        validate.positive(d["timeout"], "dns.timeout")
        validate.positive(d["ttl"], "dns.ttl")
        d["propagation_timeout"] = validate.positive(
            validate.duration_seconds(d["propagation_timeout"], "dns.propagation_timeout"), "dns.propagation_timeout")
        if d["key_name"] is not None:
            check_host_name(d["key_name"], "dns.key_name")
        self.zone = dnsclient.parse_name(d["zone"])
        return d

    def _domains(self):
        domains = self.params["domains"]
        if not domains:
            raise ParameterError("domains", "give at least one name to put in the certificate")
        seen = set()
        for i, domain in enumerate(domains):
            check_host_name(domain, f"domains[{i}]", allow_wildcard=True)
            if domain.lower() in seen:
                raise ParameterError(f"domains[{i}]", f"{domain!r} is listed twice")
            seen.add(domain.lower())
            record = dnsclient.parse_name(acmeclient.challenge_record(domain))
            if not record.is_subdomain(self.zone):
                raise ParameterError(f"domains[{i}]", f"{domain!r} is outside dns.zone {self.zone}; dns-01 publishes "
                                                      f"{record} in that zone")
        return [d.rstrip(".") for d in domains]

    def _endpoint(self):
        e = self.params["endpoint"]
        if not e:
            return None
        check_host_name(e["host"], "endpoint.host", allow_ip=True)
        check_port(e["port"], "endpoint.port")
        server_name = e["server_name"] or self.domains[0].lstrip("*.")
        check_host_name(server_name, "endpoint.server_name", allow_ip=True)
        return dict(e, server_name=server_name)

    # -- procedure -----------------------------------------------------------------------------------
    def _served(self):
        e = self.endpoint
        chain = tls.fetch_chain(e["host"], e["port"], e["server_name"], self.params["dns"]["timeout"])
        return tls.fingerprint(chain[0])

    def observe(self):
        state = {"certificate": None, "served_fingerprint": None}
        data = self.backend.read_certificate(self.params["certificate"])
        if data is not None:
            try:
                state["certificate"] = tls.facts(tls.load_pem_chain(data, self.params["certificate"])[0])
            except RunbookError as exc:
                state["unreadable"] = exc.msg
        if self.endpoint:
            try:
                state["served_fingerprint"] = self._served()
            except RunbookError as exc:
                state["served_error"] = exc.msg
        return state

    def reasons(self, before):
        p, cert = self.params, before["certificate"]
        if cert is None:
            return [before.get("unreadable") or f"no certificate {p['certificate']} is deployed"]
        reasons = []
        if cert["days_left"] < p["renew_before_days"]:
            reasons.append(f"it expires in {cert['days_left']} days ({cert['not_after']}), within renew_before_days "
                           f"{p['renew_before_days']}")
        missing = [d for d in self.domains if not tls.covers(cert["subject_alt_names"], d)]
        if missing:
            reasons.append(f"it does not cover {', '.join(missing)}")
        if p["force"] and not reasons:
            reasons.append("force=true")
        return reasons

    def plan(self, before):
        self.why = self.reasons(before)
        if not self.why:
            served, deployed = before.get("served_fingerprint"), before["certificate"]["fingerprint_sha256"]
            if self.endpoint and served != deployed:
                self.warnings.append(f"{self.endpoint['host']}:{self.endpoint['port']} serves {served or 'nothing'}, "
                                     f"not the deployed certificate {deployed}; reload the server")
            return []
        p, d = self.params, self.dns
        return [
            Step(f"order a new {p['key_type']} certificate for {', '.join(self.domains)} from {p['acme_directory']} "
                 f"(dns-01 through {d['provider']} {d['server']}:{d['port']}), because {'; '.join(self.why)}",
                 self._order),
            Step(f"deploy it as {p['certificate']} on {p['platform']}, keep the current one as the previous, and "
                 "reload the server", self._deploy),
        ]

    def _order(self):
        p, d = self.params, self.dns
        client = self.own(acmeclient.AcmeClient(p["acme_directory"], self.account_key_pem, p["acme_ca_cert"],
                                                p["account_email"], p["terms_agreed"]))
        self.account_uri = client.connect()
        provider = dnsclient.PROVIDERS[d["provider"]](d, self.zone)
        publisher = acmeclient.Dns01Publisher(provider, self.zone, d["ttl"], d["propagation_timeout"])
        _key, self.new_key_pem = tls.new_private_key(p["key_type"])
        self.module.no_log_values.add(self.new_key_pem.strip())
        self.new_chain, self.leftovers = client.issue(self.domains, self.new_key_pem, publisher, self.acme_timeout)
        self.warnings.extend(self.leftovers)
        self.new_facts = tls.facts(tls.load_pem_chain(self.new_chain, "the issued certificate")[0])
        return self.new_facts["fingerprint_sha256"]

    def _deploy(self):
        try:
            return self.backend.deploy_certificate(self.params["certificate"], self.new_chain, self.new_key_pem)
        finally:
            self.new_key_pem = None  # no longer needed in memory

    def verify(self, before, applied):
        if not self.endpoint:
            return
        wanted = self.new_facts["fingerprint_sha256"]
        e = self.endpoint
        streak = []  # consecutive new connections that got the new certificate

        def serves_new():
            # Right after a graceful reload, a new connection may still land on an old worker: one answer with the
            # new certificate is not yet "the endpoint serves it", several in a row are.
            served = self._served()
            if served != wanted:
                streak.clear()
                raise RunbookError(f"it serves {served}")
            streak.append(served)
            return len(streak) >= VERIFY_STREAK

        _ok, self.verify_seconds = wait_until(serves_new, self.verify_timeout, 0.2,
                                              what=f"{e['host']}:{e['port']} ({e['server_name']}) to serve the new "
                                                   f"certificate {wanted}")

    def rollback(self, before, applied, error):
        if not any(step.action == self._deploy for step in applied):
            return []
        name = self.params["certificate"]
        try:
            self.backend.restore_previous_certificate(name)
        except RunbookError as exc:
            return [f"restoring the previous certificate of {name} failed: {exc.msg}"]
        old = before["certificate"]["fingerprint_sha256"] if before["certificate"] else "none"
        return [f"restored the previous certificate of {name} ({old}) and reloaded the server"]

    def project(self, before, steps):
        return {"certificate": {"subject_alt_names": self.domains, "issued_by": self.params["acme_directory"]},
                "served_fingerprint": None}

    def report(self, before, after, steps):
        p = self.params
        renewed = bool(steps) and not self.check_mode
        return {
            "certificate": p["certificate"],
            "domains": self.domains,
            "renew_before_days": p["renew_before_days"],
            "renewed": renewed,
            "reasons": self.why,
            "before": before["certificate"],
            "after": after["certificate"],
            "served_fingerprint": after.get("served_fingerprint"),
            "previous_fingerprint": (before["certificate"] or {}).get("fingerprint_sha256") if renewed else None,
            "acme_account": self.account_uri,
            "verify_seconds": self.verify_seconds,
        }
