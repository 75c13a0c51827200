# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Export a Kubernetes namespace's objects into a tarball with a manifest; Secrets as names and keys, or
encrypted when asked.

A backup is written only when the namespace differs from the newest backup of it in ``dest`` (the manifest's
``fingerprint`` covers every exported document), so a scheduled run reports ``changed`` exactly when the
namespace changed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import tarfile
import time
import traceback
from datetime import UTC, datetime

from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s import state
from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.client import K8sClient
from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.settings import dns_label, k8s_settings
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_ERROR = True, None
except ImportError:
    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_ERROR = False, traceback.format_exc()

PREFIX = "k8s-state-"
MIN_PASSPHRASE = 12
SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}
# The fingerprint of encrypted Secrets is keyed by the passphrase, so it says nothing about the values.
FINGERPRINT_SALT = b"ops.runbooks k8s_state_backup fingerprint"


def _derive(passphrase, salt):
    return Scrypt(salt=salt, length=32, **SCRYPT).derive(passphrase.encode())


def encrypt(plaintext, passphrase):
    """AES-256-GCM with a key derived by scrypt from ``passphrase``; a JSON envelope, all parameters in it."""
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_derive(passphrase, salt)).encrypt(nonce, plaintext, b"k8s_state_backup secrets")
    return json.dumps({"cipher": "AES-256-GCM", "kdf": "scrypt", "kdf_params": SCRYPT,
                       "salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode(),
                       "aad": "k8s_state_backup secrets", "ciphertext": base64.b64encode(sealed).decode()},
                      indent=1).encode()


def decrypt(envelope, passphrase):
    data = json.loads(envelope)
    key = Scrypt(salt=base64.b64decode(data["salt"]), length=32, **data["kdf_params"]).derive(passphrase.encode())
    return AESGCM(key).decrypt(base64.b64decode(data["nonce"]), base64.b64decode(data["ciphertext"]),
                               data["aad"].encode())


def _dump(obj):
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


class K8sStateBackup(Procedure):
    requirements = (("cryptography", HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_ERROR),)

    @classmethod
    def argument_spec(cls):
        return ArgumentSpec(
            dict(
                namespace=dict(type="str"),
                dest=dict(type="path", required=True),
                kinds=dict(type="list", elements="str", default=sorted(state.KINDS)),
                secrets=dict(type="str", default="names", choices=["names", "encrypted", "none"]),
                encryption_passphrase=dict(type="str", no_log=True),
                platform_settings=dict(type="dict", default={}),
            ),
            required_if=[["secrets", "encrypted", ["encryption_passphrase"]]],
        )

    def validate(self):
        p = self.params
        settings = dict(p["platform_settings"] or {})
        if p["namespace"] is not None:
            settings["namespace"] = dns_label(p["namespace"], "namespace")
        try:
            self.settings = k8s_settings(settings)
        except ParameterError as exc:
            if exc.param == "platform_settings.namespace":
                raise ParameterError("namespace", exc.msg[len(exc.param) + 2:]) from None
            raise
        self.namespace = self.settings["namespace"]
        for i, kind in enumerate(p["kinds"]):
            if kind not in state.KINDS:
                raise ParameterError(f"kinds[{i}]", f"{kind!r} is not exported; choose from "
                                                    f"{', '.join(sorted(state.KINDS))} (Secrets: option secrets)")
        if p["secrets"] == "encrypted" and len(p["encryption_passphrase"] or "") < MIN_PASSPHRASE:
            raise ParameterError("encryption_passphrase", f"at least {MIN_PASSPHRASE} characters are needed to "
                                                          "encrypt Secrets")
        if p["encryption_passphrase"] and p["secrets"] != "encrypted":
            raise ParameterError("encryption_passphrase", "only used with secrets=encrypted; set it or drop the "
                                                          "passphrase")
        if os.path.exists(p["dest"]) and not os.path.isdir(p["dest"]):
            raise ParameterError("dest", f"{p['dest']!r} exists and is not a directory; give a directory")
        self.client = self.own(K8sClient(self.settings))

    # -- read ---------------------------------------------------------------------------------------
    def observe(self):
        dest, prefix = self.params["dest"], f"{PREFIX}{self.namespace}-"
        found = sorted(n for n in (os.listdir(dest) if os.path.isdir(dest) else [])
                       if n.startswith(prefix) and n.endswith(".tar.gz"))
        newest = found[-1] if found else None
        return {"backups": found, "newest": newest,
                "newest_fingerprint": self.fingerprint_of(os.path.join(dest, newest)) if newest else None}

    def fingerprint_of(self, path):
        try:
            with tarfile.open(path, "r:gz") as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("/manifest.json"))
                return json.load(tar.extractfile(member)).get("fingerprint")
        except (OSError, tarfile.TarError, StopIteration, ValueError) as exc:
            self.warnings.append(f"could not read the manifest of {path} ({exc}); writing a new backup")
            return None

    def documents(self):
        """[(path in the tarball, plain content)] of the namespace now, and the fingerprint over them."""
        p = self.params
        exported = state.export(self.client, p["kinds"])
        files = [(f"resources/{kind}/{obj['metadata']['name']}.json", _dump(obj))
                 for kind in sorted(exported) for obj in exported[kind]]
        self.counts = {kind: len(objs) for kind, objs in exported.items()}
        fingerprint = hashlib.sha256()
        for path, content in files:
            fingerprint.update(f"{path}\0{hashlib.sha256(content).hexdigest()}\n".encode())
        self.secret_listing = self.sealed = None
        if p["secrets"] != "none":
            listing, manifests = state.secrets(self.client, p["secrets"] == "encrypted")
            self.module.no_log_values.update(state.secret_values(manifests))
            self.secret_listing = listing
            files.append(("secrets/index.json", _dump(listing)))
            fingerprint.update(hashlib.sha256(_dump(listing)).hexdigest().encode())
            if manifests is not None:
                plain = _dump(manifests)
                key = _derive(p["encryption_passphrase"], FINGERPRINT_SALT)
                fingerprint.update(hmac.new(key, plain, hashlib.sha256).hexdigest().encode())
                self.sealed = plain
            self.counts["Secret"] = len(listing)
        fingerprint.update(f"secrets={p['secrets']}".encode())
        return files, fingerprint.hexdigest()

    def plan(self, before):
        self.files, self.fingerprint = self.documents()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self.name = f"{PREFIX}{self.namespace}-{stamp}"
        self.path = os.path.join(self.params["dest"], f"{self.name}.tar.gz")
        if before["newest_fingerprint"] == self.fingerprint:
            return []
        total = sum(self.counts.values())
        secrets = {"names": "Secrets as names and keys", "encrypted": "Secrets encrypted",
                   "none": "no Secrets"}[self.params["secrets"]]
        return [Step(f"write {self.path} with {total} objects of namespace {self.namespace} ({secrets})",
                     self.write)]

    # -- write --------------------------------------------------------------------------------------
    def write(self):
        dest = self.params["dest"]
        os.makedirs(dest, mode=0o700, exist_ok=True)
        files = list(self.files)
        if self.sealed is not None:
            files.append(("secrets/secrets.json.enc", encrypt(self.sealed, self.params["encryption_passphrase"])))
        entries = [{"path": path, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
                   for path, content in files]
        manifest = {"namespace": self.namespace, "created_at": datetime.now(UTC).isoformat(),
                    "server": self.client.api.configuration.host, "kinds": self.params["kinds"],
                    "counts": self.counts, "secrets": self.params["secrets"], "fingerprint": self.fingerprint,
                    "files": entries}
        if self.sealed is not None:
            manifest["encryption"] = {"file": "secrets/secrets.json.enc", "cipher": "AES-256-GCM", "kdf": "scrypt"}
        partial = f"{self.path}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for path, content in files + [("manifest.json", _dump(manifest))]:
                    info = tarfile.TarInfo(f"{self.name}/{path}")
                    info.size, info.mode, info.mtime = len(content), 0o600, int(time.time())
                    tar.addfile(info, io.BytesIO(content))
            os.replace(partial, self.path)
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise
        digest = hashlib.sha256(open(self.path, "rb").read()).hexdigest()
        with os.fdopen(os.open(f"{self.path}.sha256", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f"{digest}  {os.path.basename(self.path)}\n")
        return {"sha256": digest, "size": os.path.getsize(self.path), "files": entries}

    def verify(self, before, applied):
        """Read the tarball back: every file listed in the manifest, with its checksum."""
        expected = {e["path"]: e["sha256"] for e in applied[0].outcome["files"]}
        try:
            with tarfile.open(self.path, "r:gz") as tar:
                seen = {m.name.split("/", 1)[1]: hashlib.sha256(tar.extractfile(m).read()).hexdigest()
                        for m in tar.getmembers() if m.isfile() and not m.name.endswith("/manifest.json")}
        except (OSError, tarfile.TarError) as exc:
            raise RunbookError(f"reading back {self.path} failed: {exc}") from None
        if seen != expected:
            bad = sorted(k for k in set(seen) | set(expected) if seen.get(k) != expected.get(k))
            raise RunbookError(f"{self.path} does not hold what was written: {', '.join(bad[:5])}")

    def rollback(self, before, applied, error):
        if applied and os.path.exists(self.path):
            os.unlink(self.path)
            if os.path.exists(f"{self.path}.sha256"):
                os.unlink(f"{self.path}.sha256")
            return [f"removed the unverified {self.path}"]
        return []

    def project(self, before, steps):
        return dict(before, backups=sorted(before["backups"] + [os.path.basename(self.path)]),
                    newest=os.path.basename(self.path), newest_fingerprint=self.fingerprint)

    def report(self, before, after, steps):
        result = {"namespace": self.namespace, "fingerprint": self.fingerprint, "counts": self.counts,
                  "secrets": self.secret_listing or [], "backups": after["backups"]}
        if steps and not self.check_mode:
            result.update(path=self.path, **steps[0].outcome)
        elif steps:
            result.update(path=self.path, files=[{"path": path} for path, _content in self.files])
        else:
            result.update(path=os.path.join(self.params["dest"], before["newest"]), files=[])
        return result
