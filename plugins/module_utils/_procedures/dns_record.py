# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set or remove one DNS RRset through a DNS provider and prove the authoritative server (and resolvers) serve it."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re

from ansible_collections.ops.runbooks.plugins.module_utils._clients import dns as dnsclient
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import ArgumentSpec, verify_argspec
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step

TYPES = ["A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SRV", "TXT"]
MAX_TTL = 2**31 - 1
# Host-name style labels (plus '_' for service labels and a leading '*' wildcard): anything else in a record
# name is far more likely a typo or an injection attempt than a real name.
_RECORD = re.compile(r"^(@|(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}"
                     r"[A-Za-z0-9_])?)*\.?|\*)$")
_RESOLVER = re.compile(r"^\[(?P<v6>[^\]]+)\]:(?P<v6port>\d+)$|^(?P<v4>[^:]+):(?P<v4port>\d+)$")


def _txt(value):
    """A TXT value given as plain text becomes one quoted string (split in 255-byte pieces, the DNS limit)."""
    if value.startswith('"'):
        return value
    pieces = [value[i:i + 255] for i in range(0, max(len(value), 1), 255)]
    return " ".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in pieces)


def _resolver(text, param):
    """``address`` or ``address:port`` (``[v6]:port``); a bare IPv6 address has no port."""
    text = text.strip()
    m = _RESOLVER.match(text) or _RESOLVER.match(f"[{text}]:53" if ":" in text else f"{text}:53")
    try:
        address = str(ipaddress.ip_address(m.group("v6") or m.group("v4")))
        port = int(m.group("v6port") or m.group("v4port"))
    except (AttributeError, ValueError):
        raise ParameterError(param, f"{text!r} is not a resolver address: use an IP address with an optional port, "
                                    "such as 10.0.0.2, 10.0.0.2:5353 or [2001:db8::53]:53") from None
    if not 0 < port < 65536:
        raise ParameterError(param, f"port {port} is out of range (1-65535)")
    return address, port


class DnsRecord(Procedure):
    requirements = (dnsclient.REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        return ArgumentSpec(
            dict(
                provider=dict(type="str", default="rfc2136", choices=sorted(dnsclient.PROVIDERS)),
                zone=dict(type="str", required=True),
                record=dict(type="str", required=True),
                type=dict(type="str", default="A", choices=TYPES),
                values=dict(type="list", elements="str"),
                ttl=dict(type="int", default=300),
                state=dict(type="str", default="present", choices=["present", "absent"]),
                server=dict(type="str"),
                port=dict(type="int", default=53),
                key_name=dict(type="str"),
                key_secret=dict(type="str", no_log=True),
                key_algorithm=dict(type="str", default="hmac-sha256", choices=dnsclient.TSIG_ALGORITHMS),
                timeout=dict(type="int", default=10),
                verify_resolver=dict(type="list", elements="str", default=[]),
            ),
            required_together=[["key_name", "key_secret"]],
            required_if=[["state", "present", ["values"]], ["provider", "rfc2136", ["server"]]],
        ).merge(verify_argspec())

    # -- input ---------------------------------------------------------------------------------------
    def validate(self):
        p = self.params
        try:
            self.zone = dnsclient.parse_name(p["zone"])
        except ValueError as exc:
            raise ParameterError("zone", f"{p['zone']!r} is not a DNS name ({exc})") from None
        self.name = self._record_name(p["record"])
        validate.positive(p["ttl"], "ttl", allow_zero=True)
        if p["ttl"] > MAX_TTL:
            raise ParameterError("ttl", f"must be at most {MAX_TTL} seconds, got {p['ttl']}")
        validate.positive(p["port"], "port")
        validate.positive(p["timeout"], "timeout")
        self.verify_timeout = validate.duration_seconds(p["verify_timeout"], "verify_timeout")
        self.resolvers = [_resolver(r, f"verify_resolver[{i}]") for i, r in enumerate(p["verify_resolver"])]
        self.wanted = self._wanted_values()
        if p["key_secret"] is not None:
            try:
                base64.b64decode(p["key_secret"], validate=True)
            except (binascii.Error, ValueError):
                raise ParameterError("key_secret", "is not base64; use the secret exactly as tsig-keygen or the "
                                                   "server's key clause prints it") from None
        self.provider = dnsclient.PROVIDERS[p["provider"]](p, self.zone)
        self.verify_seconds = None

    def _record_name(self, record):
        zone_text = self.zone.to_text(omit_final_dot=True)
        if not _RECORD.match(record):
            raise ParameterError("record", f"{record!r} is not a host name: use labels of letters, digits, '-' and "
                                           "'_', relative to the zone or ending with a dot")
        if not record.endswith(".") and (record == zone_text or record.endswith("." + zone_text)):
            raise ParameterError("record", f"{record!r} would mean {record}.{self.zone}; write {record}. (with the "
                                           "final dot) for that full name, or the name relative to the zone")
        name = dnsclient.parse_name(record, self.zone)
        if not name.is_subdomain(self.zone):
            raise ParameterError("record", f"{name} is outside zone {self.zone}; use a name in the zone or set zone "
                                           "to the zone that holds it")
        return name

    def _wanted_values(self):
        p = self.params
        values = [_txt(v) for v in p["values"] or []] if p["type"] == "TXT" else list(p["values"] or [])
        if p["state"] == "present" and not values:
            raise ParameterError("values", "state=present needs at least one value; use state=absent to remove")
        if p["type"] == "CNAME" and len(values) > 1:
            raise ParameterError("values", "a CNAME has exactly one target; give one value")
        try:
            return dnsclient.make_rdataset(p["type"], p["ttl"], values, self.zone) if values else None
        except dnsclient.IndexedValueError as exc:
            raise ParameterError(f"values[{exc.index}]", str(exc)) from None

    # -- procedure -----------------------------------------------------------------------------------
    def observe(self):
        self.current = self.provider.read(self.name, self.params["type"])
        return dnsclient.rrset_text(self.current)

    def plan(self, before):
        self.target = self._target()
        if dnsclient.same_rrset(self.current, self.target):
            return []
        after = dnsclient.rrset_text(self.target)
        verb = "delete" if self.target is None else "set"
        return [Step(f"{verb} {self.name} {self.params['type']}: {before['values']} ttl {before['ttl']} -> "
                     f"{after['values']} ttl {after['ttl']}",
                     lambda: self.provider.replace(self.name, self.params["type"], self.current, self.target))]

    def _target(self):
        if self.params["state"] == "present":
            return self.wanted
        if self.wanted is None or not self.current:
            return None
        # absent with values removes only those values and keeps the rest of the RRset (and its TTL).
        remaining = self.current.difference(self.wanted)
        return remaining or None

    def verify(self, before, applied):
        wanted = dnsclient.rrset_text(self.target)
        record = f"{self.name} {self.params['type']}"

        def served():
            now = dnsclient.rrset_text(self.provider.read(self.name, self.params["type"]))
            if now != wanted:
                raise RunbookError(f"{self.params['server']} still answers {now}")
            for address, port in self.resolvers:
                answer = dnsclient.query_resolver(address, port, self.name, self.params["type"], self.params["timeout"])
                if dnsclient.rrset_text(answer)["values"] != wanted["values"]:
                    raise RunbookError(f"resolver {address}:{port} still answers {dnsclient.rrset_text(answer)}")
            return True

        _ok, self.verify_seconds = wait_until(served, self.verify_timeout, 0.2,
                                              what=f"{record} to be served as {wanted['values']}")

    def rollback(self, before, applied, error):
        if not applied:
            return []
        try:
            self.provider.replace(self.name, self.params["type"], self.target, self.current)
        except RunbookError as exc:
            return [f"restoring {self.name} {self.params['type']} to {before['values']} failed: {exc.msg}"]
        return [f"restored {self.name} {self.params['type']} to {before['values']} ttl {before['ttl']}"]

    def project(self, before, steps):
        return dnsclient.rrset_text(self.target)

    def report(self, before, after, steps):
        return {
            "provider": self.params["provider"],
            "zone": self.zone.to_text(),
            "record": self.name.to_text(),
            "type": self.params["type"],
            "before": before,
            "after": after,
            "update": self.provider.describe(self.name, self.params["type"], self.current, self.target)
            if steps else [],
            "serial": self.provider.serial(),
            "verify_seconds": self.verify_seconds,
        }
