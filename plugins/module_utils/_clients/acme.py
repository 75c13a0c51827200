# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACME (RFC 8555) client on certbot's maintained ``acme`` library: find or create the account, order a
certificate, prove control of each name with dns-01 and download the chain.

dns-01 records are published through a DNS provider of ``_clients.dns`` (RFC 2136 + TSIG today), waited for on
the authoritative server, and removed again whatever happens. Library and server errors become RunbookError at
this boundary; no message carries key material.
"""

from __future__ import annotations

import datetime
import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._clients import dns as dnsclient
from ansible_collections.ops.runbooks.plugins.module_utils._clients import tls
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError

try:
    import josepy as jose
    import requests
    from acme import challenges, crypto_util, errors, messages
    from acme import client as acme_client

    HAS_ACME, ACME_IMPORT_ERROR = True, None
except ImportError:
    HAS_ACME, ACME_IMPORT_ERROR = False, traceback.format_exc()

REQUIREMENT = ("acme", HAS_ACME, ACME_IMPORT_ERROR)
USER_AGENT = "ops.runbooks"
CHALLENGE_LABEL = "_acme-challenge"


def challenge_record(domain):
    """The name dns-01 asks for: ``_acme-challenge.<domain>``, one per base name for a wildcard too."""
    return f"{CHALLENGE_LABEL}.{domain[2:] if domain.startswith('*.') else domain}".rstrip(".") + "."


class Dns01Publisher:
    """Publishes dns-01 TXT records in one zone and removes them afterwards, restoring what was there."""

    def __init__(self, provider, zone, ttl, timeout):
        self.provider = provider
        self.zone = zone
        self.ttl = ttl
        self.timeout = timeout
        self._published = []  # (name, before rdataset, after rdataset)

    def publish(self, values_by_record):
        for record, values in values_by_record.items():
            name = dnsclient.parse_name(record)
            before = self.provider.read(name, "TXT")
            after = dnsclient.make_rdataset("TXT", self.ttl, [f'"{v}"' for v in sorted(values)], self.zone)
            self.provider.replace(name, "TXT", before, after)
            self._published.append((name, before, after))
        wanted = {str(n): dnsclient.rrset_text(a)["values"] for n, _b, a in self._published}

        def served():
            for name, _before, _after in self._published:
                now = dnsclient.rrset_text(self.provider.read(name, "TXT"))["values"]
                if now != wanted[str(name)]:
                    raise RunbookError(f"{name} TXT is {now}")
            return True

        wait_until(served, self.timeout, 0.2, what="the dns-01 TXT records on the authoritative server")

    def cleanup(self):
        """Remove what ``publish`` added; returns what could not be removed (never raises)."""
        problems = []
        while self._published:
            name, before, after = self._published.pop()
            try:
                self.provider.replace(name, "TXT", after, before)
            except RunbookError as exc:
                problems.append(f"removing {name} TXT failed: {exc.msg}")
        return problems


class AcmeClient:
    def __init__(self, directory_url, account_key_pem, ca_cert=None, email=None, terms_agreed=False, timeout=30):
        self.directory_url = directory_url
        key = tls.load_private_key(account_key_pem, "the ACME account key")
        self.account_key = jose.JWKEC(key=key) if hasattr(key, "curve") else jose.JWKRSA(key=key)
        curve = getattr(getattr(key, "curve", None), "name", None)
        if curve is not None and curve not in ("secp256r1", "secp384r1"):
            raise RunbookError(f"the ACME account key uses curve {curve}; use P-256, P-384 or RSA")
        alg = {"secp256r1": jose.ES256, "secp384r1": jose.ES384}.get(curve, jose.RS256)
        self.email = email
        self.terms_agreed = terms_agreed
        self.net = acme_client.ClientNetwork(self.account_key, alg=alg, verify_ssl=ca_cert or True,
                                             user_agent=USER_AGENT, timeout=timeout)
        self.client = None
        self.account_uri = None

    def _call(self, what, function, *args):
        try:
            return function(*args)
        except errors.ConflictError:
            raise  # an account that exists already: connect() reads it
        except errors.ValidationError as exc:
            raise RunbookError(f"{what} at {self.directory_url} failed: the ACME server could not validate "
                               f"{_failed_challenges(exc)}; check that the dns-01 records reach the server the CA "
                               "asks", acme_directory=self.directory_url) from None
        except errors.TimeoutError:
            raise RunbookError(f"{what} at {self.directory_url} did not finish in time; raise acme_timeout or "
                               "check the CA's status", acme_directory=self.directory_url) from None
        except messages.Error as exc:
            raise RunbookError(f"{what} at {self.directory_url} refused: {exc.typ}: {exc.detail}",
                               acme_directory=self.directory_url, acme_error=exc.typ) from None
        except requests.exceptions.SSLError as exc:
            raise RunbookError(f"{what}: the TLS certificate of {self.directory_url} is not trusted ({exc}); give "
                               "its CA in acme_ca_cert", acme_directory=self.directory_url) from None
        except (requests.exceptions.RequestException, errors.Error, ValueError) as exc:
            raise RunbookError(f"{what} at {self.directory_url} failed: {type(exc).__name__}: {exc}",
                               acme_directory=self.directory_url) from None

    def connect(self):
        """Read the directory, then find the account of the key or create it."""
        if self.client is not None:
            return self.account_uri
        directory = self._call("reading the ACME directory", acme_client.ClientV2.get_directory,
                               self.directory_url, self.net)
        self.client = acme_client.ClientV2(directory, net=self.net)
        terms = getattr(directory.meta, "terms_of_service", None)
        if terms and not self.terms_agreed:
            raise RunbookError(f"the ACME server {self.directory_url} asks to agree to its terms of service "
                               f"({terms}); read them and set terms_agreed=true", parameter="terms_agreed")
        registration = messages.NewRegistration.from_data(email=self.email, terms_of_service_agreed=True)
        try:
            account = self._call("creating the ACME account", self.client.new_account, registration)
        except errors.ConflictError as existing:
            account = self._call("reading the ACME account", self.client.query_registration,
                                 messages.RegistrationResource(uri=existing.location, body=messages.Registration()))
        self.account_uri = account.uri
        return account.uri

    def issue(self, domains, private_key_pem, publisher, timeout):
        """Order a certificate for ``domains`` with the key of ``private_key_pem`` (text), proving each name with
        dns-01 through ``publisher``. Returns the full chain (PEM text, leaf first)."""
        if self.client is None:
            self.connect()
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        csr = crypto_util.make_csr(private_key_pem.encode(), list(domains))
        order = self._call(f"ordering a certificate for {', '.join(domains)}", self.client.new_order, csr)
        answers, records = [], {}
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue  # the CA still holds a valid proof for this name
            domain = authz.body.identifier.value
            if authz.body.wildcard:
                domain = f"*.{domain}"
            challenge = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.DNS01)), None)
            if challenge is None:
                raise RunbookError(f"the ACME server offers no dns-01 challenge for {domain}; use a CA that does")
            records.setdefault(challenge_record(domain), set()).add(challenge.chall.validation(self.account_key))
            answers.append(challenge)
        try:
            publisher.publish(records)
            for challenge in answers:
                self._call("answering the dns-01 challenge", self.client.answer_challenge, challenge,
                           challenge.chall.response(self.account_key))
            order = self._call(f"validating and finalizing the order for {', '.join(domains)}",
                               self.client.poll_and_finalize, order, deadline)
        finally:
            leftovers = publisher.cleanup()
        if not order.fullchain_pem:
            raise RunbookError(f"the ACME server finished the order for {', '.join(domains)} without a certificate")
        return order.fullchain_pem, leftovers

    def close(self):
        session = getattr(self.net, "session", None)
        if session is not None:
            session.close()


def _failed_challenges(exc):
    parts = []
    for authz in exc.failed_authzrs:
        for challenge in authz.body.challenges:
            if challenge.error is not None:
                parts.append(f"{authz.body.identifier.value} ({challenge.chall.typ}: {challenge.error.detail})")
    return ", ".join(parts) or "some names"
