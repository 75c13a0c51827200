# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS probe: handshake, then report the server certificate and fail when it expires within ``min_days``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import Probe, ProbeFailed, ca_file, port
from ansible_collections.ops.runbooks.plugins.module_utils._common.validate import positive

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR = True, None
except ImportError:
    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR = False, traceback.format_exc()


class TlsProbe(Probe):
    type = "tls"
    options = dict(host=dict(type="str"), port=dict(type="int"), server_name=dict(type="str"),
                   min_days=dict(type="int"), validate_certs=dict(type="bool"), ca_cert=dict(type="path"))
    defaults = dict(port=443, min_days=14, validate_certs=True)
    required = ("host",)
    requirement = ("cryptography", HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR)

    def validate(self):
        port(self.fields["port"], self.param("port"))
        positive(self.fields["min_days"], self.param("min_days"), allow_zero=True)
        ca_file(self.fields["ca_cert"], self.param("ca_cert"))

    def prepare(self, shared):
        self.context = shared.ssl_context(self.fields["validate_certs"], self.fields["ca_cert"])

    async def check(self):
        f = self.fields
        server_name = f["server_name"] or f["host"]
        _reader, writer = await asyncio.open_connection(f["host"], f["port"], ssl=self.context,
                                                        server_hostname=server_name)
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
            # The certificate is read; a peer slow to acknowledge the close must not fail the check.
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        detail = dict(server_name=server_name, **certificate_facts(der))
        if detail["days_left"] < f["min_days"]:
            when = "expired" if detail["days_left"] < 0 else f"expires in {detail['days_left']} days"
            raise ProbeFailed(f"certificate of {server_name} {when} ({detail['not_after']}), less than "
                              f"min_days {f['min_days']}; renew it", **detail)
        return detail


def certificate_facts(der):
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = sans.get_values_for_type(x509.DNSName) + [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "subject_alt_names": names,
        "serial_number": format(cert.serial_number, "x"),
        "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(":"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": round(left.total_seconds() / 86400, 2),
    }
