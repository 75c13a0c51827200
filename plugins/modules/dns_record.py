#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dns_record
short_description: Set or remove a DNS record and verify the authoritative server and resolvers serve it
version_added: 0.1.0
description:
  - Reads the record's current RRset from the zone's authoritative server, replaces it with O(values) and
    O(ttl) in one atomic change, then waits until the authoritative server and every O(verify_resolver)
    answer the new values, then runs the O(verify) probes, if any. When the new values are not served within
    O(verify_timeout), or a probe fails, the old RRset is put back.
  - With O(provider=rfc2136), the change is one RFC 2136 dynamic UPDATE signed with a TSIG key. It deletes the
    RRset and adds the new one, with a prerequisite that the RRset is still what was read, so a concurrent
    change is never overwritten.
  - Nothing is sent when the RRset already has the same values and TTL.
  - In check mode, only reads are sent; the plan, the RRset before and after and the UPDATE that would be
    sent (in nsupdate syntax) are returned.
options:
  provider:
    description:
      - The DNS service that holds the zone. V(rfc2136) is any authoritative server accepting dynamic updates
        (BIND, Knot, PowerDNS, Windows DNS).
    type: str
    default: rfc2136
    choices: [rfc2136]
  zone:
    description:
      - The zone that holds the record, such as V(example.com).
    type: str
    required: true
  record:
    description:
      - The record's name, relative to O(zone) (V(www), V(@) for the zone apex) or a full name ending with a dot
        (V(www.example.com.)). It must be inside O(zone).
    type: str
    required: true
  type:
    description:
      - The record type.
    type: str
    default: A
    choices: [A, AAAA, CAA, CNAME, MX, NS, PTR, SRV, TXT]
  values:
    description:
      - The record's data in zone-file syntax, one entry per record, such as V(192.0.2.10) for A or
        V(10 mail.example.com.) for MX. Names without a final dot are relative to O(zone).
      - For TXT, a value that does not start with a double quote is taken as one string and quoted.
      - Required with O(state=present). With O(state=absent), only these values are removed; without them, the
        whole RRset is.
    type: list
    elements: str
  ttl:
    description:
      - Time to live of the RRset, in seconds. A changed TTL alone is a change.
    type: int
    default: 300
  state:
    description:
      - V(present) makes the RRset exactly O(values) with O(ttl); V(absent) removes it (or only O(values)).
    type: str
    default: present
    choices: [present, absent]
  server:
    description:
      - The authoritative server (primary) of the zone, by address or name. Required with O(provider=rfc2136).
    type: str
  port:
    description:
      - The port of O(server), for both queries and updates (over TCP).
    type: int
    default: 53
  key_name:
    description:
      - Name of the TSIG key that signs the update. Without it, the update is sent unsigned.
    type: str
  key_secret:
    description:
      - The TSIG key's secret, base64, as C(tsig-keygen) prints it. Required with O(key_name). Never returned or
        logged.
    type: str
  key_algorithm:
    description:
      - The TSIG key's algorithm.
    type: str
    default: hmac-sha256
    choices: [hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512]
  timeout:
    description:
      - Seconds one query or update may take.
    type: int
    default: 10
  verify_resolver:
    description:
      - Resolvers that must also answer the new values before the change counts as done, each an IP address
        with an optional port (V(10.0.0.2), V(10.0.0.2:5353), V([2001:db8::53]:53)).
      - A caching resolver answers the old values until their TTL runs out, so allow for it in O(verify_timeout).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ops.runbooks.verify
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
requirements:
  - dnspython >= 2.4
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Point app.example.com at the secondary site
  ops.runbooks.dns_record:
    zone: example.com
    record: app
    type: A
    values: [198.51.100.20]
    ttl: 60
    server: ns1.example.com
    key_name: ops-update
    key_secret: "{{ vault_dns_tsig_secret }}"
    verify_resolver: [10.0.0.2]
    verify_timeout: 2min

- name: Remove a stale verification TXT record
  ops.runbooks.dns_record:
    zone: example.com
    record: _acme-challenge.www
    type: TXT
    state: absent
    server: 192.0.2.53
    key_name: ops-update
    key_secret: "{{ vault_dns_tsig_secret }}"
"""

RETURN = r"""
verification:
  description: Result of the O(verify) probes after the change (per-probe details); absent when nothing was probed.
  returned: when O(verify) is set and something changed
  type: dict
provider:
  description: The provider used.
  returned: always
  type: str
  sample: rfc2136
zone:
  description: The zone, as a full name.
  returned: always
  type: str
  sample: example.com.
record:
  description: The record's full name.
  returned: always
  type: str
  sample: app.example.com.
type:
  description: The record type.
  returned: always
  type: str
  sample: A
before:
  description: The RRset before the change; C(values) is empty and C(ttl) null when there was none.
  returned: always
  type: dict
  sample: {values: [192.0.2.10], ttl: 300}
after:
  description: The RRset after the change, as the authoritative server answers it (in check mode, the prediction).
  returned: always
  type: dict
  sample: {values: [198.51.100.20], ttl: 60}
update:
  description: The dynamic update sent (or, in check mode, that would be sent), in nsupdate syntax; empty when
    nothing changes.
  returned: always
  type: list
  elements: str
  sample:
    - prereq yxrrset app.example.com. A 192.0.2.10
    - update delete app.example.com. A
    - update add app.example.com. 60 A 198.51.100.20
serial:
  description: The zone's SOA serial on the authoritative server after the change (unchanged in check mode).
  returned: always
  type: int
  sample: 2024061503
verify_seconds:
  description: How long the authoritative server and the resolvers took to answer the new values; null when
    nothing was changed.
  returned: always
  type: float
  sample: 0.012
plan:
  description: Human-readable list of the changes.
  returned: always
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.dns_record import DnsRecord


def main():
    run_procedure(DnsRecord)


if __name__ == "__main__":
    main()
