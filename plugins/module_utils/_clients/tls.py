# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""X.509 certificates on ``cryptography``: parse PEM chains, fetch the chain a TLS endpoint serves, describe a
certificate by its public facts (never key material), check a chain, make a private key.

Every parse or connection failure is turned into RunbookError at this boundary.
"""

from __future__ import annotations

import datetime
import re
import socket
import ssl
import struct
import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR = True, None
except ImportError:
    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR = False, traceback.format_exc()

try:
    from OpenSSL import SSL as OpenSSL_SSL  # noqa: N812 (pyOpenSSL's own spelling)

    HAS_PYOPENSSL = True
except ImportError:
    HAS_PYOPENSSL = False

REQUIREMENT = ("cryptography", HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR)
KEY_TYPES = ["ec256", "ec384", "rsa2048", "rsa3072", "rsa4096"]
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_PEM_PRIVATE = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def holds_private_key(data):
    data = data.encode() if isinstance(data, str) else data
    return bool(_PEM_PRIVATE.search(data or b""))


def load_pem_chain(data, where):
    """The certificates of a PEM text (leaf first, as servers and files keep them). Raises RunbookError naming
    ``where`` when there is none or one does not parse."""
    data = data.encode() if isinstance(data, str) else data
    blocks = _PEM_CERT.findall(data or b"")
    if not blocks:
        raise RunbookError(f"{where} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        return [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError as exc:
        raise RunbookError(f"{where}: a certificate does not parse: {exc}") from None


def fingerprint(cert):
    return cert.fingerprint(hashes.SHA256()).hex(":")


def names(cert):
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return sans.get_values_for_type(x509.DNSName) + [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]


def facts(cert, now=None):
    """What a certificate says about itself; safe to return and log."""
    now = now or datetime.datetime.now(datetime.UTC)
    left = cert.not_valid_after_utc - now
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "subject_alt_names": names(cert),
        "serial_number": format(cert.serial_number, "x"),
        "fingerprint_sha256": fingerprint(cert),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": round(left.total_seconds() / 86400, 2),
        "self_signed": cert.issuer == cert.subject,
    }


def covers(cert_names, name):
    """True when ``name`` is one of the certificate's names, directly or through a one-label wildcard."""
    name = name.lower().rstrip(".")
    for entry in (n.lower().rstrip(".") for n in cert_names):
        if entry == name:
            return True
        if entry.startswith("*.") and "." in name and name.split(".", 1)[1] == entry[2:]:
            return True
    return False


def chain_linked(chain):
    """(True, None) when every certificate is signed by the next one in the list, else (False, why)."""
    for child, parent in zip(chain, chain[1:], strict=False):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, Exception) as exc:  # InvalidSignature has no common base besides Exception
            return False, f"{child.subject.rfc4514_string()} is not issued by {parent.subject.rfc4514_string()} " \
                          f"({type(exc).__name__})"
    return True, None


def chain_trusted(chain, ca_file, server_name):
    """Verify ``chain`` (leaf first) up to a root of ``ca_file`` as a TLS server certificate for ``server_name``.

    Returns (True, None) or (False, why)."""
    import ipaddress

    from cryptography.x509 import verification

    try:
        with open(ca_file, "rb") as f:
            roots = load_pem_chain(f.read(), f"ca_cert {ca_file}")
    except OSError as exc:
        raise RunbookError(f"reading ca_cert {ca_file} failed: {exc}") from None
    try:
        subject = x509.IPAddress(ipaddress.ip_address(server_name))
    except ValueError:
        subject = x509.DNSName(server_name)
    verifier = (verification.PolicyBuilder().store(verification.Store(roots))
                .time(datetime.datetime.now(datetime.UTC)).build_server_verifier(subject))
    try:
        verifier.verify(chain[0], chain[1:])
    except verification.VerificationError as exc:
        return False, str(exc)
    return True, None


def fetch_chain(host, port, server_name, timeout):
    """The certificate chain a TLS server sends (leaf first), without judging it: checking it is the caller's job.

    With pyOpenSSL the whole chain is read; without it, only the leaf."""
    where = f"{host}:{port}"
    try:
        if HAS_PYOPENSSL:
            return _fetch_with_pyopenssl(host, port, server_name, timeout)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True)
        return [x509.load_der_x509_certificate(der)]
    except (OSError, ssl.SSLError) as exc:
        raise RunbookError(f"TLS handshake with {where} (server name {server_name}) failed: {exc}; check host, "
                           "port and that it serves TLS") from None
    except Exception as exc:  # pyOpenSSL's SSL.Error and friends
        raise RunbookError(f"TLS handshake with {where} (server name {server_name}) failed: "
                           f"{type(exc).__name__}: {exc}") from None


def _fetch_with_pyopenssl(host, port, server_name, timeout):
    context = OpenSSL_SSL.Context(OpenSSL_SSL.TLS_CLIENT_METHOD)
    context.set_verify(OpenSSL_SSL.VERIFY_NONE, lambda *args: True)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        # pyOpenSSL needs a blocking socket; the kernel's own timeouts keep a silent peer from hanging it.
        sock.setblocking(True)
        limit = struct.pack("ll", int(timeout), int((timeout % 1) * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        conn = OpenSSL_SSL.Connection(context, sock)
        conn.set_tlsext_host_name(server_name.encode("idna"))
        conn.set_connect_state()
        conn.do_handshake()
        chain = conn.get_peer_cert_chain(as_cryptography=True) or []
        try:
            conn.shutdown()
        except Exception:  # the peer may close first; the chain is read already
            pass
    if not chain:
        raise RunbookError(f"{host}:{port} completed the handshake without sending a certificate")
    return list(chain)


def new_private_key(key_type):
    """A new private key of ``key_type`` (one of KEY_TYPES) and its PEM (PKCS#8, unencrypted) as text."""
    if key_type.startswith("ec"):
        key = ec.generate_private_key(ec.SECP256R1() if key_type == "ec256" else ec.SECP384R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return key, pem.decode()


def load_private_key(data, where):
    data = data.encode() if isinstance(data, str) else data
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        # The message never quotes the data: it is a private key.
        raise RunbookError(f"{where} is not an unencrypted PEM private key ({type(exc).__name__})") from None
