#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cert_renew
short_description: Renew a TLS certificate through ACME when it is due, deploy it, prove it is served
version_added: 0.1.0
description:
  - Reads the certificate the platform serves as O(certificate). When it is missing, has fewer than
    O(renew_before_days) days left, or does not cover every name of O(domains), orders a new one from the ACME
    server O(acme_directory) (Let's Encrypt, any RFC 8555 CA, pebble in tests) with a new private key of
    O(key_type). Otherwise nothing changes (C(changed=false)).
  - Control of each name is proven with the C(dns-01) challenge, the TXT record C(_acme-challenge.<name>) published
    in O(dns.zone) with an RFC 2136 dynamic update signed with a TSIG key, waited for on the authoritative server,
    and removed afterwards (whatever was there before is put back).
  - The new chain and key are deployed where the platform serves them, the replaced pair is kept as the previous
    one, and the server is reloaded without dropping connections. On V(compose), the files are
    C(cert_file) and C(key_file) of C(platform_settings.certificates.<certificate>) (the key mode 0600, each
    written atomically, the previous pair kept as C(<file>.previous)), and the reload runs
    C(platform_settings.proxy.reload_command) (default C(nginx -s reload)) in the C(platform_settings.proxy.service)
    containers.
  - Then, with O(endpoint), the endpoint must serve the new certificate's SHA-256 fingerprint within
    O(verify_timeout), and the O(verify) probes must pass. When either fails, the previous certificate is put back
    and the server reloaded, and the module fails.
  - Results carry fingerprints, serial numbers and validity dates, never key material. The ACME account key and
    the TSIG secret are never returned or logged.
  - In check mode nothing is contacted but the platform's stored certificate and O(endpoint); the plan says whether
    and why a renewal would happen.
options:
  certificate:
    description:
      - The name of the certificate in C(platform_settings.certificates).
    type: str
    required: true
  domains:
    description:
      - The names the certificate must cover, the first one also its subject; a V(*.) wildcard is allowed. Each
        must lie in O(dns.zone).
    type: list
    elements: str
    required: true
  renew_before_days:
    description:
      - Renew when fewer days than this are left before the deployed certificate expires.
    type: int
    default: 30
  force:
    description:
      - Renew even when the deployed certificate is not due. Every run then changes something.
    type: bool
    default: false
  acme_directory:
    description:
      - The ACME directory URL, such as V(https://acme-v02.api.letsencrypt.org/directory).
    type: str
    required: true
  acme_ca_cert:
    description:
      - A PEM CA file to trust for the ACME server's HTTPS certificate instead of the system's (a private CA, pebble).
    type: path
  acme_timeout:
    description:
      - How long ordering, validation and issuance may take together, in seconds or with a unit (V(5min)).
    type: raw
    default: 300
  account_key_src:
    description:
      - A PEM file holding the ACME account's private key (EC P-256, P-384 or RSA). The account is created at the
        first use of the key, and found again afterwards.
      - Exactly one of O(account_key_src) and O(account_key_content) is required.
    type: path
  account_key_content:
    description:
      - The ACME account's private key as PEM text. Never returned or logged.
    type: str
  account_email:
    description:
      - Contact address for the ACME account when it is created.
    type: str
  terms_agreed:
    description:
      - Agree to the ACME server's terms of service. Required when the server has terms.
    type: bool
    default: false
  key_type:
    description:
      - The type of the certificate's new private key.
    type: str
    default: ec256
    choices: [ec256, ec384, rsa2048, rsa3072, rsa4096]
  challenge:
    description:
      - How control of the names is proven.
    type: str
    default: dns-01
    choices: [dns-01]
  dns:
    description:
      - Where the C(dns-01) records are published.
    type: dict
    required: true
    suboptions:
      provider:
        description:
          - The DNS service that holds O(dns.zone); V(rfc2136) is any authoritative server accepting dynamic updates.
        type: str
        default: rfc2136
        choices: [rfc2136]
      server:
        description:
          - The zone's primary authoritative server, by address or name.
        type: str
        required: true
      port:
        description:
          - Port of O(dns.server).
        type: int
        default: 53
      zone:
        description:
          - The zone that holds the C(_acme-challenge) names, such as V(example.com).
        type: str
        required: true
      key_name:
        description:
          - Name of the TSIG key that signs the updates.
        type: str
      key_secret:
        description:
          - The TSIG key's secret, base64. Required with O(dns.key_name). Never returned or logged.
        type: str
      key_algorithm:
        description:
          - The TSIG key's algorithm.
        type: str
        default: hmac-sha256
        choices: [hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512]
      timeout:
        description:
          - Seconds one DNS query or update may take; also the TLS connection timeout for O(endpoint).
        type: int
        default: 10
      ttl:
        description:
          - TTL of the challenge records.
        type: int
        default: 60
      propagation_timeout:
        description:
          - How long to wait for the authoritative server to answer the challenge records.
        type: raw
        default: 60
  endpoint:
    description:
      - The TLS endpoint that serves the certificate. After the deployment it must serve the new certificate
        (same SHA-256 fingerprint) within O(verify_timeout), or the previous certificate is put back.
    type: dict
    suboptions:
      host:
        description:
          - Address or name to connect to.
        type: str
        required: true
      port:
        description:
          - Port to connect to.
        type: int
        default: 443
      server_name:
        description:
          - Name sent in SNI. Defaults to the first of O(domains) (without a wildcard's V(*.)).
        type: str
extends_documentation_fragment:
  - ops.runbooks.platform
  - ops.runbooks.verify
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
requirements:
  - acme (certbot's ACME library) and josepy
  - cryptography
  - dnspython >= 2.4
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Renew the site certificate when under 30 days, served by nginx on the Compose host
  ops.runbooks.cert_renew:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    certificate: site
    domains: [shop.example.com, www.shop.example.com]
    acme_directory: https://acme-v02.api.letsencrypt.org/directory
    account_key_src: /etc/ops/acme/account.key
    account_email: ops@example.com
    terms_agreed: true
    dns:
      server: ns1.example.com
      zone: example.com
      key_name: acme-update
      key_secret: "{{ vault_acme_tsig_secret }}"
    endpoint:
      host: shop.example.com
    verify:
      - type: http
        url: https://shop.example.com/health/ready
"""

RETURN = r"""
certificate:
  description: The certificate's name in C(platform_settings.certificates).
  returned: always
  type: str
  sample: site
domains:
  description: The names ordered (or that would be ordered).
  returned: always
  type: list
  elements: str
renewed:
  description: Whether a new certificate was deployed (false in check mode).
  returned: always
  type: bool
reasons:
  description: Why a renewal is due; empty when it is not.
  returned: always
  type: list
  elements: str
  sample: ["it expires in 3.0 days (2025-06-18T10:00:00+00:00), within renew_before_days 30"]
renew_before_days:
  description: The threshold used.
  returned: always
  type: int
before:
  description: Facts of the certificate deployed before the run (subject, issuer, subject_alt_names,
    serial_number, fingerprint_sha256, not_before, not_after, days_left, self_signed); null when none was.
  returned: always
  type: dict
after:
  description: Facts of the certificate deployed after the run (in check mode, the names and CA it would have).
  returned: always
  type: dict
served_fingerprint:
  description: SHA-256 fingerprint of the certificate O(endpoint) serves after the run; null without O(endpoint).
  returned: always
  type: str
previous_fingerprint:
  description: SHA-256 fingerprint of the certificate kept as the previous one; null when nothing was renewed.
  returned: always
  type: str
acme_account:
  description: URL of the ACME account used; null when the ACME server was not contacted.
  returned: always
  type: str
verify_seconds:
  description: How long the endpoint took to serve the new certificate; null when nothing was checked.
  returned: always
  type: float
verification:
  description: Result of the O(verify) probes after the change.
  returned: when something changed and O(verify) is set
  type: dict
plan:
  description: What was done (or would be done in check mode); empty when the certificate is not due.
  returned: always
  type: list
  elements: str
rolled_back:
  description: On failure after the deployment, what was undone (the previous certificate put back).
  returned: on failure after the deployment
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.cert_renew import CertRenew


def main():
    run_procedure(CertRenew)


if __name__ == "__main__":
    main()
