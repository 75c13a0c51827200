# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace secret values in collected text (logs, states, query results) by ``[REDACTED]``.

Redaction works on a file's whole content: a secret split across two log chunks is only whole once they are
joined, so callers must assemble a file before redacting it.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlsplit

REDACTED = "[REDACTED]"

# Names of environment variables whose values are secrets; matching too much only hides more. A name ending in
# _FILE, _PATH or _DIR (DATABASE_PASSWORD_FILE) holds where the secret is, not the secret.
SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|CERT|SALT|SIGNATURE", re.IGNORECASE)
LOCATION_NAME = re.compile(r"_(FILE|PATH|DIR)$", re.IGNORECASE)


def env_secrets(env):
    """Secret values of an environment mapping: values of secret-looking names, and passwords in URL values
    (``DATABASE_URL=postgresql://app:pw@db/app``) whatever the name."""
    env = {name: value for name, value in env.items() if isinstance(value, str)}
    found = [value for name, value in env.items() if SECRET_NAME.search(name) and not LOCATION_NAME.search(name)]
    for value in env.values():
        try:
            parts = urlsplit(value)
            password = parts.password if "@" in parts.netloc else None
        except ValueError:
            password = None
        found += [password] if password else []
    return found


def _forms(secret):
    """How a secret shows up in files: as is, escaped inside a JSON string, percent-encoded in a URL."""
    text = secret.decode("utf-8", "surrogateescape") if isinstance(secret, bytes) else str(secret)
    text = text.strip()
    if not text:
        return set()
    forms = {text, json.dumps(text)[1:-1], quote(text, safe="")}
    return {f.encode("utf-8", "surrogateescape") for f in forms}


class Redactor:
    """One pass over the content per file: every form of every secret, longest first, so a secret that
    contains another is hidden whole."""

    def __init__(self, secrets):
        forms = set().union(*(_forms(s) for s in secrets or () if s is not None))
        self._pattern = (re.compile(b"|".join(re.escape(f) for f in sorted(forms, key=lambda f: (-len(f), f))))
                         if forms else None)

    def __call__(self, content):
        """Return ``(redacted bytes, number of replacements)`` for ``content`` (bytes or str)."""
        data = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else bytes(content)
        if self._pattern is None:
            return data, 0
        return self._pattern.subn(REDACTED.encode(), data)
