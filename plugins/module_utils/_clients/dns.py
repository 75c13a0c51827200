# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DNS data-plane client on dnspython: DNS providers that read and replace one RRset, and resolver checks.

A provider is one class with ``read``, ``serial`` and ``replace``; ``PROVIDERS`` maps the ``provider`` option
to it. ``rfc2136`` talks to an authoritative server directly: reads over TCP without recursion, writes one
TSIG-signed UPDATE. An Azure DNS provider is added here as one more class when the Azure platform arrives
(its SDK imported lazily inside it). Every dnspython error is turned into RunbookError at this boundary.
"""

from __future__ import annotations

import socket
import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdata
    import dns.rdataclass
    import dns.rdataset
    import dns.rdatatype
    import dns.tsig
    import dns.tsigkeyring
    import dns.update

    HAS_DNSPYTHON = True
    DNSPYTHON_IMPORT_ERROR = None
except ImportError:
    HAS_DNSPYTHON = False
    DNSPYTHON_IMPORT_ERROR = traceback.format_exc()

REQUIREMENT = ("dnspython", HAS_DNSPYTHON, DNSPYTHON_IMPORT_ERROR)
TSIG_ALGORITHMS = ["hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"]

# Answers that mean the RFC 2136 prerequisite failed: the RRset is no longer what was read.
_PREREQ_FAILED = ("NXRRSET", "YXRRSET", "NXDOMAIN", "YXDOMAIN")


def rrset_text(rdataset):
    """``{"values": [...], "ttl": N}`` with absolute names and sorted values; an absent RRset has no values."""
    if not rdataset:
        return {"values": [], "ttl": None}
    return {"values": sorted(r.to_text(origin=None, relativize=False) for r in rdataset), "ttl": rdataset.ttl}


def _address(host, param):
    """dnspython needs an IP address; a server given by name is resolved once by the system resolver."""
    try:
        return socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError as exc:
        raise RunbookError(f"cannot resolve {param} {host!r}: {exc}; give an IP address or a resolvable name",
                           parameter=param) from exc


def _answer_rdataset(response, name, rdtype):
    if response.rcode() == dns.rcode.NXDOMAIN:
        return None
    try:
        return response.find_rrset(response.answer, name, dns.rdataclass.IN, rdtype)
    except KeyError:
        return None


def query_resolver(address, port, name, rdtype, timeout):
    """Ask a (recursive or caching) resolver for ``name``/``rdtype`` over UDP, TCP when truncated.

    Returns the answered rdataset or None for no data / no such name.
    """
    rdtype = dns.rdatatype.RdataType.make(rdtype)
    query = dns.message.make_query(name, rdtype)
    try:
        response, _tcp = dns.query.udp_with_fallback(query, address, port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException) as exc:
        raise RunbookError(f"resolver {address}:{port} did not answer for {name} {dns.rdatatype.to_text(rdtype)}: "
                           f"{exc}") from exc
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise RunbookError(f"resolver {address}:{port} answered {dns.rcode.to_text(response.rcode())} for {name}")
    return _answer_rdataset(response, name, rdtype)


class Rfc2136Provider:
    """An authoritative server that accepts RFC 2136 dynamic updates, signed with a TSIG key when one is given."""

    name = "rfc2136"

    def __init__(self, params, zone):
        self.zone = zone
        self.server = params["server"]
        self.port = params["port"]
        self.timeout = params["timeout"]
        self.key_name = params.get("key_name")
        self.keyring = None
        if self.key_name:
            self.keyring = dns.tsigkeyring.from_text(
                {self.key_name: (params["key_algorithm"], params["key_secret"])})
        self._where = None

    @property
    def where(self):
        if self._where is None:
            self._where = _address(self.server, "server")
        return self._where

    def _exchange(self, message, what):
        try:
            return dns.query.tcp(message, self.where, port=self.port, timeout=self.timeout)
        except dns.tsig.PeerBadKey as exc:
            raise self._refused(what, f"the server does not know TSIG key {self.key_name!r}") from exc
        except (dns.tsig.PeerBadSignature, dns.tsig.PeerBadTime, dns.tsig.PeerError) as exc:
            raise self._refused(what, f"the server rejected the signature of TSIG key {self.key_name!r} ({exc}); "
                                      "key_secret or key_algorithm do not match the server's key") from exc
        except (OSError, dns.exception.DNSException) as exc:
            raise RunbookError(f"{what} on {self.server}:{self.port} failed: {exc}; check server and port",
                               zone=self.zone.to_text()) from exc

    def _refused(self, what, why):
        return RunbookError(
            f"{what} in zone {self.zone.to_text()} refused by {self.server}:{self.port}: {why}. Fix: use the key the "
            "server's zone configuration allows to update (allow-update / update-policy), with its exact secret "
            "and algorithm",
            zone=self.zone.to_text(), key_name=self.key_name)

    def read(self, name, rdtype):
        """The RRset as the authoritative server holds it now (None when absent)."""
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        what = f"read of {name} {dns.rdatatype.to_text(rdtype)}"
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        response = self._exchange(query, what)
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or not response.flags & dns.flags.AA:
            raise RunbookError(
                f"{what}: {self.server}:{self.port} is not authoritative for zone {self.zone.to_text()} "
                f"(answered {dns.rcode.to_text(rcode)}); point server at the zone's primary", zone=self.zone.to_text())
        return _answer_rdataset(response, name, rdtype)

    def serial(self):
        soa = self.read(self.zone, dns.rdatatype.SOA)
        return soa[0].serial if soa else None

    def replace(self, name, rdtype, before, after):
        """One UPDATE: only if the RRset is still ``before``, delete it and add ``after`` (None deletes it).

        The server applies the message atomically, so readers see either the old or the new RRset, never none.
        """
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        type_text = dns.rdatatype.to_text(rdtype)
        what = f"update of {name} {type_text}"
        update = dns.update.UpdateMessage(self.zone, keyring=self.keyring, keyname=self.key_name)
        if before:
            # A value-dependent prerequisite must carry TTL 0 (RFC 2136 2.4.2), or the server answers FORMERR.
            update.present(name, dns.rdataset.from_rdata_list(0, list(before)))
        else:
            update.absent(name, rdtype)
        update.delete(name, rdtype)
        if after:
            update.add(name, after)
        response = self._exchange(update, what)
        rcode = dns.rcode.to_text(response.rcode())
        if rcode == "NOERROR":
            return
        if rcode == "NOTAUTH":
            why = (f"NOTAUTH: the server is not authoritative for the zone or did not accept TSIG key "
                   f"{self.key_name!r}")
            raise self._refused(what, why)
        if rcode == "REFUSED":
            key = f"TSIG key {self.key_name!r}" if self.key_name else "an unsigned update (no key_name)"
            raise self._refused(what, f"REFUSED: {key} is not allowed to update this zone")
        if rcode in _PREREQ_FAILED:
            raise RunbookError(f"{what} in zone {self.zone.to_text()} not applied: the RRset changed since it was "
                               f"read ({rcode}); run again", zone=self.zone.to_text())
        raise RunbookError(f"{what} in zone {self.zone.to_text()} failed on {self.server}:{self.port}: {rcode}",
                           zone=self.zone.to_text())

    @staticmethod
    def describe(name, rdtype, before, after):
        """The UPDATE ``replace`` sends, in nsupdate syntax, for the plan and check mode."""
        type_text = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
        lines = [f"prereq yxrrset {name} {type_text} {v}" for v in rrset_text(before)["values"]]
        lines = lines or [f"prereq nxrrset {name} {type_text}"]
        lines.append(f"update delete {name} {type_text}")
        if after:
            lines += [f"update add {name} {after.ttl} {type_text} {v}" for v in rrset_text(after)["values"]]
        return lines


PROVIDERS = {cls.name: cls for cls in (Rfc2136Provider,)}


def parse_name(text, origin=None):
    """A DNS name; without a trailing dot it is relative to ``origin``. Raises ValueError."""
    try:
        return dns.name.from_text(text, origin=origin or dns.name.root)
    except dns.exception.DNSException as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc


def make_rdataset(type_text, ttl, values, origin):
    """An rdataset from zone-file texts (names without a trailing dot are relative to ``origin``).

    Raises ValueError naming the index of the first value that does not parse.
    """
    rdatas = []
    for index, text in enumerate(values):
        try:
            rdatas.append(dns.rdata.from_text(dns.rdataclass.IN, type_text, text, origin=origin, relativize=False))
        except (dns.exception.DNSException, ValueError) as exc:
            raise IndexedValueError(index, f"{text!r} is not valid {type_text} data ({exc})") from exc
    return dns.rdataset.from_rdata_list(ttl, rdatas)


def same_rrset(a, b):
    """Equal values and TTL (dnspython's own equality ignores the TTL)."""
    if not a or not b:
        return not a and not b
    return a == b and a.ttl == b.ttl


class IndexedValueError(ValueError):
    def __init__(self, index, msg):
        super().__init__(msg)
        self.index = index
