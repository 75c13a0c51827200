#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: evidence_collect
short_description: Collect incident evidence into a redacted tarball with a sha256 manifest
version_added: 0.1.0
description:
  - Collects, from the platform, the logs since O(since), the state of every replica (with environment values
    replaced by C([REDACTED])) and the platform's status view (C(docker compose ps --all) for V(compose)); with
    O(postgres), the database activity (C(pg_stat_activity), C(pg_locks), replication and replication slots),
    taken in one read-only transaction; with O(deploy_history), the recorded deploys
    (C(.runbooks/revisions/*.json) in the Compose project directory) when there are any.
  - Writes them into a new C(evidence-<platform>-<UTC time>.tar.gz) in O(dest) (mode 0600), with a
    C(manifest.json) inside listing every file's sha256, and the tarball's own sha256 beside it in a C(.sha256)
    file (the format of C(sha256sum)).
  - Every secret value the run knows is replaced by C([REDACTED]) in every file, as it is, JSON-escaped or
    percent-encoded - the values of this task's no_log options (such as C(postgres.login_password) and
    O(redact)), the values of secret-looking variables (names containing C(PASS), C(SECRET), C(TOKEN), C(KEY),
    C(AUTH), C(CREDENTIAL), C(PRIVATE), C(CERT)...) of the project's env file and of the services' environment,
    passwords in URLs there, the content of every file under the project's C(secrets/) directory and of every
    file named by the compose C(secrets:) section. Each file is redacted whole, so a secret split across log
    chunks is caught too. Unredacted content is never written to disk.
  - A source that cannot be read (a container removed meanwhile, a database that is down) is listed under
    C(missing) in the manifest and the result, with a warning; the rest is still collected.
  - Always reports a change (it writes a new bundle). In check mode, lists the files it would collect and writes
    nothing.
  - On V(k8s), collects the namespace's events since O(since), the status of its Deployments (or of O(services))
    and of their pods (literal environment values replaced by C([REDACTED])), their ReplicaSet history, and each
    container's log since O(since). Pods whose node has no kubelet to serve logs (virtual nodes) are listed in
    C(missing) as C(logs unavailable); the rest is still collected. The values of the namespace's Secrets are
    redacted everywhere.
extends_documentation_fragment:
  - ops.runbooks.platform
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff lists the evidence bundles in O(dest) before and after.
options:
  dest:
    description:
      - Directory on the managed host for the bundle; created (mode 0700) when missing.
    type: path
    required: true
  since:
    description:
      - Collect logs from this time on. A duration back from now (V(30min), V(2h), V(1d), or seconds) or an ISO
        8601 timestamp (V(2024-05-01T13:00:00Z); UTC when it has no offset).
    type: str
    default: 1h
  services:
    description:
      - Only these services (Compose services for V(compose)). All when omitted.
    type: list
    elements: str
  postgres:
    description:
      - Connection options of the database whose activity to include, as the PostgreSQL modules take them
        (C(login_host), C(login_port), C(login_user), C(login_password), C(login_unix_socket), C(db), C(ssl_mode),
        C(ca_cert), C(ssl_cert), C(ssl_key), C(connect_timeout)). Omit to leave the database out.
      - Reading other sessions' queries needs a superuser or a member of C(pg_read_all_stats).
    type: dict
    suboptions:
      login_host:
        description: Host running the database server. Empty means the local Unix socket.
        type: str
        default: ''
        aliases: [host]
      login_port:
        description: Database port.
        type: int
        default: 5432
        aliases: [port]
      login_user:
        description: The role to connect as.
        type: str
        default: postgres
        aliases: [login]
      login_password:
        description: The password of C(login_user). Never returned or logged, and redacted from the bundle.
        type: str
        default: ''
      login_unix_socket:
        description: Directory of the Unix socket; wins over C(login_host) when set.
        type: str
        default: ''
        aliases: [unix_socket]
      db:
        description: Database to connect to.
        type: str
        default: postgres
        aliases: [login_db]
      ssl_mode:
        description: libpq SSL mode.
        type: str
        default: prefer
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: File of trusted certificate authorities used to verify the server certificate.
        type: path
        aliases: [ssl_rootcert]
      ssl_cert:
        description: Client certificate file.
        type: path
      ssl_key:
        description: Private key of C(ssl_cert).
        type: path
      connect_timeout:
        description: Seconds to wait for a connection.
        type: int
        default: 10
  deploy_history:
    description:
      - Include the recorded deploys, when the platform keeps any.
    type: bool
    default: true
  redact:
    description:
      - More secret values to replace by C([REDACTED]), such as API tokens known only to the playbook.
        Never returned or logged.
    type: list
    elements: str
    default: []
notes:
  - The C(verify) option of the changing modules is not offered - collecting evidence changes nothing on the
    platform, only writes a new file.
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Collect the last 30 minutes of evidence for the incident
  ops.runbooks.evidence_collect:
    platform: "{{ runbook_platform }}"
    platform_settings: "{{ runbook_platform_settings }}"
    dest: /var/tmp/incidents/INC-1234
    since: 30min
    postgres:
      login_host: 127.0.0.1
      login_port: 58432
      login_user: runbook_admin
      login_password: "{{ vault_pg_admin_password }}"
    redact:
      - "{{ vault_payment_api_token }}"
  register: evidence

- name: Only the blue slot, since the deploy started
  ops.runbooks.evidence_collect:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    dest: /var/tmp/incidents/INC-1235
    since: "2024-05-01T13:00:00Z"
    services: [app_blue]
"""

RETURN = r"""
path:
  description: The bundle written (or, in check mode, that would be written).
  returned: always
  type: str
  sample: /var/tmp/incidents/INC-1234/evidence-compose-20240501T130512.123456Z.tar.gz
since:
  description: The start of the collected logs, UTC.
  returned: always
  type: str
  sample: "2024-05-01T12:35:12.123456+00:00"
sha256:
  description: sha256 of the bundle, also in RV(sha256_file).
  returned: when not in check mode
  type: str
sha256_file:
  description: The C(.sha256) file beside the bundle (C(sha256sum -c) checks it).
  returned: when not in check mode
  type: str
size:
  description: Size of the bundle in bytes.
  returned: when not in check mode
  type: int
files:
  description:
    - The files of the bundle under its top directory, as in its C(manifest.json) - C(path), C(sha256) and
      C(size) of the redacted content and C(redacted), how many secret values were replaced in it.
    - In check mode, only the C(path) of each file it would collect.
  returned: always
  type: list
  elements: dict
  sample:
    - path: logs/ops-runbooks-lab-app_blue-1.log
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      size: 5120
      redacted: 2
missing:
  description: Sources that could not be read, with the reason (secret values redacted).
  returned: when not in check mode
  type: dict
plan:
  description: What the module does (or would do in check mode).
  returned: always
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.evidence_collect import EvidenceCollect


def main():
    run_procedure(EvidenceCollect)


if __name__ == "__main__":
    main()
