#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: secret_rotate
short_description: Rotate a credential in two phases, verify its consumers, retire the old one
version_added: 0.1.0
description:
  - Rotates one credential so that its consumers never lose access. The new credential is created beside the old
    one, stored in the platform's secret store, the consumers are restarted one replica at a time, and only when
    they are verified to use the new credential is the old one retired.
  - Phases, each recorded in the rotation state as soon as it is done - C(staged) (a new random value written to
    the store's pending entry, mode 0600), C(created) (the credential exists at the server beside the old one),
    C(stored) (the store holds the new value; the old one moves to the store's prior entry), C(rolled) (every
    replica of every O(consumers) service restarted and healthy again), C(verified) (the server accepts the new
    credential and, with O(consumer_check), every replica reports its fingerprint), C(retired) (the old credential
    is refused). The state holds versions, fingerprints and login role names, never a value.
  - A run that is interrupted (the process killed, the host lost) leaves the state at its last phase; the next run
    resumes from there (O(interrupted=resume)) or undoes what was done (O(interrupted=rollback)). A phase that
    fails before C(verified) is rolled back at once (the store and the consumers return to the old credential and
    the new one is withdrawn); a failure later keeps the state for a resume, since the consumers already use the
    new credential.
  - V(postgres_role) alternates two login roles (O(login_roles)) that are members of one group role
    (O(group_role)). The new role gets the new password (sent as a SCRAM-SHA-256 verifier computed on the managed
    host, so the password never reaches the server's logs), C(SET role) to the group so the objects it creates
    belong to the group, and the store's O(user_setting) names it. Retiring removes the old role's LOGIN and
    password and ends its sessions. The first rotation from a role that is not one of O(login_roles) (the group
    role itself, say) moves the consumers to the first of them.
  - V(redis_acl) adds the new password to the ACL user O(acl_user) (as its SHA-256), so the user holds both
    during the change, and removes the old one when retiring. Without O(redis.password), the module authenticates
    as O(acl_user) with the value the store holds. When the server has an C(aclfile), C(ACL SAVE) follows each
    change.
  - V(app_secret) is a key the consumers check themselves, such as a JWT signing key. Storing it moves the old
    value to O(previous_secret), which consumers keep accepting; retiring empties O(previous_secret) and rolls
    the consumers again.
  - Idempotent through its policy - a rotation starts when this module never rotated the credential, when the
    stored value differs from the recorded version (changed by hand), when the current version is older than
    O(max_age), or with O(force). Otherwise C(changed=false).
  - In check mode, returns the plan (the SQL or ACL rules with every secret masked) and changes nothing.
  - On V(compose), a secret is a file named in the project's C(secrets:) section and O(user_setting) a file
    named in its C(configs:) section; staged values are hidden files beside the secret's file; the state is
    C(.runbooks/rotations/NAME.json) in the project directory (mode 0600); consumers are restarted with the Docker
    API, which mounts the replaced files again.
extends_documentation_fragment:
  - ops.runbooks.platform
  - ops.runbooks.verify
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the version, fingerprint and login role before and after.
options:
  name:
    description:
      - Name of the rotation, unique per credential; names its recorded state.
    type: str
    required: true
  kind:
    description:
      - What the credential is (see the description).
    type: str
    required: true
    choices: [app_secret, postgres_role, redis_acl]
  secret:
    description:
      - The store entry the consumers read the value from (a Compose secret name such as V(db_app_password)).
    type: str
    required: true
  consumers:
    description:
      - Services that use the credential (Compose services); each is restarted one replica at a time after the
        store changes, and must keep enough healthy replicas to serve meanwhile.
    type: list
    elements: str
    default: []
  consumer_check:
    description:
      - An HTTP endpoint every replica of the O(consumers) serves that mentions the fingerprint of the credential
        it uses (never the value). Each replica is asked directly, not through the proxy; the rotation is verified
        when every replica reports the new fingerprint (and, for V(app_secret) after retirement, no longer the old
        one).
    type: dict
    suboptions:
      port:
        description: Port the replicas listen on.
        type: int
        required: true
      path:
        description: Path to GET.
        type: str
        default: /
  max_age:
    description:
      - Rotate when the current version is older than this (a duration such as V(30d), V(12h), or seconds).
      - Without it, a credential is rotated once and then only with O(force) or after a change by hand.
    type: raw
  force:
    description:
      - Rotate now whatever the age of the current version.
    type: bool
    default: false
  interrupted:
    description:
      - What to do with a rotation an earlier run left unfinished - V(resume) it from its last recorded phase, or
        V(rollback) what it did (refused once the old credential is retired).
    type: str
    default: resume
    choices: [resume, rollback]
  length:
    description:
      - Bytes of randomness of a new value (URL-safe base64, so about 4/3 as many characters).
    type: int
    default: 32
  roll_timeout:
    description:
      - Seconds (or a duration) to wait for each consumer replica to be healthy around its restart, and for the
        replicas to report the new fingerprint.
    type: raw
    default: 120
  stop_timeout:
    description:
      - Seconds a consumer replica gets to finish its requests in flight after the stop signal. Defaults to the
        service's own grace period.
    type: raw
  postgres:
    description:
      - Connection options of a role that may create and alter roles (V(postgres_role)), as the PostgreSQL
        modules take them (C(login_host), C(login_port), C(login_user), C(login_password), C(login_unix_socket),
        C(db), C(ssl_mode), C(ca_cert), C(ssl_cert), C(ssl_key), C(connect_timeout)). The new credential is
        checked with the same host, port and database.
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
        description: The password of C(login_user). Never returned or logged.
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
  group_role:
    description:
      - V(postgres_role) - the group role both login roles are members of; it must exist and should own the
        consumers' objects.
    type: str
  login_roles:
    description:
      - V(postgres_role) - the two login roles to alternate between, such as V([app_a, app_b]); created when
        missing.
    type: list
    elements: str
  user_setting:
    description:
      - V(postgres_role) - the non-secret store entry naming the login role the consumers use (a Compose config
        such as V(db_app_user)).
    type: str
  redis:
    description:
      - V(redis_acl) - where the Redis server is and, optionally, an ACL admin to change O(acl_user) with.
    type: dict
    suboptions:
      host:
        description: Redis host.
        type: str
      port:
        description: Redis port.
        type: int
        default: 6379
      username:
        description: ACL user to administer with; with O(redis.password).
        type: str
      password:
        description:
          - Password of O(redis.username). Never returned or logged.
          - Without it, the module authenticates as O(acl_user) with the value the store holds.
        type: str
      tls:
        description: Connect with TLS.
        type: bool
        default: false
  acl_user:
    description:
      - V(redis_acl) - the ACL user whose password is rotated.
    type: str
    default: default
  previous_secret:
    description:
      - V(app_secret) - the store entry the consumers read the previous value from (empty when there is none).
    type: str
notes:
  - Consumers read the store when they start, so each replica is restarted; a service with a single replica is
    briefly unavailable.
  - Redis keeps ACL changes in memory unless it has an C(aclfile); a Redis whose configuration holds the
    password (as the lab's, generated from the secret file at start) picks up the stored value when it restarts.
  - "Test-only: the environment variable E(OPS_RUNBOOKS_SECRET_ROTATE_FAULT=NAME:PHASE) kills the module right
    after rotation NAME recorded PHASE."
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Rotate the application's database credential every 30 days (roles app_a/app_b in group app)
  ops.runbooks.secret_rotate:
    platform: "{{ runbook_platform }}"
    platform_settings: "{{ runbook_platform_settings }}"
    name: app-database
    kind: postgres_role
    secret: db_app_password
    user_setting: db_app_user
    group_role: app
    login_roles: [app_a, app_b]
    postgres:
      login_host: 127.0.0.1
      login_port: 58432
      login_user: runbook_admin
      login_password: "{{ vault_pg_admin_password }}"
      db: app
    consumers: [app_blue, app_green]
    consumer_check: {port: 8000, path: /credentials}
    max_age: 30d

- name: Rotate the Redis password of the default user now
  ops.runbooks.secret_rotate:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    name: app-redis
    kind: redis_acl
    secret: redis_password
    acl_user: default
    redis: {host: 127.0.0.1, port: 58379}
    consumers: [app_blue, app_green]
    force: true

- name: Finish (or undo) a rotation a lost connection interrupted
  ops.runbooks.secret_rotate:
    platform: compose
    platform_settings: "{{ runbook_platform_settings }}"
    name: app-jwt
    kind: app_secret
    secret: jwt_signing_key
    previous_secret: jwt_signing_key_previous
    consumers: [app_blue, app_green]
    interrupted: rollback
"""

RETURN = r"""
name:
  description: The rotation.
  returned: always
  type: str
kind:
  description: The kind of credential.
  returned: always
  type: str
reason:
  description: Why something was (or, in check mode, would be) done; null when nothing was due.
  returned: always
  type: str
  sample: version 3 is 2592011s old, max_age is 2592000s
version:
  description: The version now current (in check mode, the one that would be); 0 before the first rotation.
  returned: always
  type: int
fingerprint:
  description: Fingerprint (salted SHA-256, truncated) of the current value; consumers with O(consumer_check)
    report the same. In check mode V((new)) when a rotation would happen.
  returned: always
  type: str
  sample: sha256:3f1c2a9b8d7e6f50
identity:
  description: The login role or ACL user the consumers use now (null for V(app_secret)).
  returned: always
  type: str
previous:
  description: Version, fingerprint and identity of the credential replaced (retired unless the run failed).
  returned: when a rotation ran or would run
  type: dict
resumed_from:
  description: The last phase an interrupted run recorded, when this run resumed it.
  returned: always
  type: str
rolled_back:
  description: Whether this run rolled back an interrupted rotation (O(interrupted=rollback)).
  returned: always
  type: bool
phases:
  description: Each phase run - C(phase), C(seconds) and C(actions) (statements with secrets masked, replicas
    restarted, checks passed). Empty in check mode.
  returned: always
  type: list
  elements: dict
plan:
  description: The phases to run, with the statements or rules they run (secrets masked).
  returned: always
  type: list
  elements: str
verification:
  description: Result of the O(verify) probes after the rotation.
  returned: when O(verify) is set and something changed
  type: dict
resume:
  description: On failure, what the next run will do with the recorded state.
  returned: on failure
  type: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.secret_rotate import SecretRotate


def main():
    run_procedure(SecretRotate)


if __name__ == "__main__":
    main()
