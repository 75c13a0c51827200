#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cert_check
short_description: Report a TLS certificate's expiry, issuer, names and chain, and its days left against a threshold
version_added: 0.1.0
description:
  - Reads one certificate with its chain from exactly one source, a live TLS endpoint (O(host)), a PEM file
    (O(path)), a PEM text (O(content)) or a certificate the platform stores (O(certificate)), and describes it
    by its public facts only (subject, issuer, names, serial number, SHA-256 fingerprint, validity).
  - Compares the days left with O(min_days) (C(expiring)); with O(fail_on_expiring=true) an expiring certificate
    fails the task.
  - Checks that each certificate of the chain is signed by the next one and, with O(ca_cert), that the chain leads
    to a trusted root and is valid for the server name.
  - Changes nothing, in check mode or not.
options:
  host:
    description:
      - A TLS endpoint to read the certificate from, by name or address. The handshake does not judge the
        certificate, so an expired or untrusted one is still reported.
    type: str
  port:
    description:
      - Port of O(host).
    type: int
    default: 443
  server_name:
    description:
      - The name sent in SNI and checked with O(ca_cert). Defaults to O(host), or for other sources to the
        certificate's first name.
    type: str
  path:
    description:
      - A PEM file holding the certificate, optionally followed by its chain, on the host the module runs on.
    type: path
  content:
    description:
      - The certificate (and chain) as PEM text. A text holding a private key is refused.
      - Not logged, in case a private key is pasted by mistake.
    type: str
  certificate:
    description:
      - The name of a certificate the platform serves, one of C(platform_settings.certificates); on V(compose), the
        C(cert_file) of that entry is read.
    type: str
  min_days:
    description:
      - The threshold. C(expiring) is true when fewer days than this are left.
    type: int
    default: 30
  fail_on_expiring:
    description:
      - Fail the task when the certificate is expiring (or expired).
    type: bool
    default: false
  names:
    description:
      - Names the certificate must cover (directly or through a wildcard); those it does not are returned in
        C(missing_names).
    type: list
    elements: str
    default: []
  ca_cert:
    description:
      - A PEM file of trusted root certificates to verify the chain against.
    type: path
  timeout:
    description:
      - Seconds the connection to O(host) may take.
    type: int
    default: 10
extends_documentation_fragment:
  - ops.runbooks.platform
  - ops.runbooks.attributes.INFO_MODULE
requirements:
  - cryptography
  - pyOpenSSL (optional, to read the whole chain an endpoint sends; without it only the leaf)
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Days left of the public endpoint, failing under two weeks
  ops.runbooks.cert_check:
    host: shop.example.com
    min_days: 14
    fail_on_expiring: true

- name: The certificate nginx serves, as the Compose platform stores it
  ops.runbooks.cert_check:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    certificate: site
  register: site_cert

- name: A certificate file, verified against a CA bundle for a name
  ops.runbooks.cert_check:
    path: /etc/ssl/shop/fullchain.pem
    ca_cert: /etc/ssl/certs/ca-certificates.crt
    server_name: shop.example.com
    names: [shop.example.com, www.shop.example.com]
"""

RETURN = r"""
source:
  description: Where the certificate was read.
  returned: always
  type: str
  sample: endpoint shop.example.com:443
certificate:
  description: The leaf certificate's facts.
  returned: always
  type: dict
  contains:
    subject:
      description: Subject distinguished name (RFC 4514).
      type: str
    issuer:
      description: Issuer distinguished name (RFC 4514).
      type: str
    subject_alt_names:
      description: DNS names and IP addresses of the subject alternative name extension.
      type: list
      elements: str
    serial_number:
      description: Serial number, hexadecimal.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint of the DER certificate, colon-separated hex.
      type: str
    not_before:
      description: Start of validity (ISO 8601, UTC).
      type: str
    not_after:
      description: End of validity (ISO 8601, UTC).
      type: str
    days_left:
      description: Days left until C(not_after), the number O(min_days) is compared with; negative when expired.
      type: float
    self_signed:
      description: Whether issuer and subject are the same.
      type: bool
chain:
  description: The facts of the certificates after the leaf, in the order they were given or sent.
  returned: always
  type: list
  elements: dict
chain_linked:
  description: Whether each certificate is signed by the next one.
  returned: always
  type: bool
chain_trusted:
  description: Whether the chain verifies against O(ca_cert) for the server name; null without O(ca_cert).
  returned: always
  type: bool
chain_error:
  description: Why the chain is not linked or not trusted; null when it is.
  returned: always
  type: str
expiring:
  description: Whether fewer than O(min_days) days are left.
  returned: always
  type: bool
missing_names:
  description: The O(names) the certificate does not cover.
  returned: always
  type: list
  elements: str
days_left:
  description: Days left of the leaf certificate.
  returned: always
  type: float
  sample: 61.4
not_after:
  description: End of validity of the leaf certificate.
  returned: always
  type: str
fingerprint_sha256:
  description: SHA-256 fingerprint of the leaf certificate.
  returned: always
  type: str
serial_number:
  description: Serial number of the leaf certificate, hexadecimal.
  returned: always
  type: str
issuer:
  description: Issuer of the leaf certificate.
  returned: always
  type: str
subject_alt_names:
  description: Names of the leaf certificate.
  returned: always
  type: list
  elements: str
min_days:
  description: The threshold used.
  returned: always
  type: int
plan:
  description: Always empty; the module changes nothing.
  returned: always
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.cert_check import CertCheck


def main():
    run_procedure(CertCheck)


if __name__ == "__main__":
    main()
