# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kinds of credential ``secret_rotate`` rotates, each with the same steps: create the new credential beside
the old one at the server, switch the store, prove a credential works (or no longer works), retire the old one.

A value passed to these methods is a secret: it goes to the server (for PostgreSQL only as a SCRAM verifier, for
Redis only as a SHA-256 hash) and never into a message, a plan or a result.
"""

from __future__ import annotations

import hashlib
import re
import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import (
    REQUIREMENT as PSYCOPG_REQUIREMENT,
)
from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import (
    connection_kwargs,
    sql,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

try:
    import psycopg
except ImportError:  # reported through PSYCOPG_REQUIREMENT
    psycopg = None

try:
    import redis

    REDIS_REQUIREMENT = ("redis", True, None)
except ImportError:
    redis = None
    REDIS_REQUIREMENT = ("redis", False, traceback.format_exc())

FINGERPRINT_PREFIX = b"ops.runbooks fingerprint:"
_REDIS_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
# What a server answers to a credential it does not accept (as opposed to "cannot reach the server").
_PG_REFUSED = ("password authentication failed", "is not permitted to log in", "authentication failed")
MASKED = "'********'"


def fingerprint(value):
    """A short, salted digest that tells versions apart without revealing the value (consumers report the same)."""
    if not value:
        return None
    return "sha256:" + hashlib.sha256(FINGERPRINT_PREFIX + value.encode()).hexdigest()[:16]


class Credential:
    """One kind. ``identity`` is who logs in (a login role, an ACL user; None for a shared key)."""

    kind = None
    #: the old value must be withdrawn from the consumers (they accept it themselves), so retiring rolls them again
    retire_rolls_consumers = False

    def __init__(self, params, backend, remember):
        """``remember(value)`` registers a secret value so Ansible masks it wherever it might show up."""
        self.params = params
        self.backend = backend
        self.remember = remember

    def requirement(self):
        return None

    def current_identity(self):
        return None

    def next_identity(self, current):
        return current

    def observe(self, identities):
        return {}

    def create_plan(self, identity, version):
        return []

    def create(self, identity, value):
        return []

    def store(self, old_identity, old_value, identity, value):
        self.backend.write_secret(self.params["secret"], value)

    def restore(self, old_identity, old_value):
        self.backend.write_secret(self.params["secret"], old_value or "")

    def accepts(self, identity, value):
        """True when the server lets ``identity`` in with ``value``, False when it refuses; None: not checkable."""
        return None

    def retire_plan(self, identity):
        return []

    def retire(self, identity, value):
        return []

    def drop(self, identity, value):
        """Undo ``create`` (rollback)."""
        return []

    def close(self):
        pass


class PostgresRole(Credential):
    """Two login roles that are members of one group role: the consumers use one while the other is created,
    then the old one loses its LOGIN. Objects the consumers create belong to the group (``SET role``)."""

    kind = "postgres_role"

    def __init__(self, params, backend, remember):
        super().__init__(params, backend, remember)
        self._conn = None

    @staticmethod
    def validate(params):
        for key in ("postgres", "group_role", "login_roles", "user_setting"):
            if not params.get(key):
                raise ParameterError(key, "required for kind postgres_role")
        group = validate.identifier(params["group_role"], "group_role")[0]
        roles = [r[0] for r in validate.identifiers(params["login_roles"], "login_roles")]
        if len(roles) != 2 or roles[0] == roles[1]:
            raise ParameterError("login_roles", "give exactly two different login roles, such as [app_a, app_b]")
        if group in roles:
            raise ParameterError("login_roles", f"must not include the group role {group!r}")
        _entry(params["user_setting"], "user_setting")

    def requirement(self):
        return PSYCOPG_REQUIREMENT

    @property
    def conn(self):
        if self._conn is None:
            kwargs = connection_kwargs(self.params["postgres"], application_name="ops.runbooks secret_rotate")
            try:
                self._conn = psycopg.connect(autocommit=True, **kwargs)
            except psycopg.Error as exc:
                raise RunbookError(f"postgres {kwargs.get('host')}:{kwargs['port']}: cannot connect as "
                                   f"{kwargs.get('user')}: {_first_line(exc)}; check the postgres options") from None
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self, statement, args=None, shown=None):
        try:
            cur = self.conn.execute(statement, args)
            return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            # The statement may hold a password verifier: name it by its masked text only.
            shown = shown or statement.as_string(self.conn)
            raise RunbookError(f"postgres: {_first_line(exc)} (while running: {shown})",
                               sqlstate=getattr(exc, "sqlstate", None)) from None

    def current_identity(self):
        name = self.backend.read_setting(self.params["user_setting"])
        if not name:
            raise RunbookError(f"setting {self.params['user_setting']!r} is empty: it must hold the login role the "
                               "consumers use now; write it, then run again")
        return name

    def next_identity(self, current):
        first, second = self.params["login_roles"]
        return second if current == first else first

    def observe(self, identities):
        group = self.params["group_role"]
        names = sorted({group, *self.params["login_roles"], *[i for i in identities if i]})
        rows = self._run(sql.SQL(
            "SELECT r.rolname, r.rolcanlogin, pg_has_role(r.oid, g.oid, 'MEMBER') AS in_group, "
            "(SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname) AS sessions "
            "FROM pg_roles r LEFT JOIN pg_roles g ON g.rolname = %s WHERE r.rolname = ANY(%s)"),
            (group, names))
        roles = {r[0]: {"can_login": r[1], "in_group": bool(r[2]), "sessions": r[3]} for r in rows}
        if group not in roles:
            raise RunbookError(f"group role {group!r} does not exist; create it (it owns the consumers' objects), "
                               "then run again", parameter="group_role")
        return {"roles": roles}

    def _create_statements(self, identity, verifier, exists):
        group = sql.Identifier(self.params["group_role"])
        role = sql.Identifier(identity)
        password = sql.SQL(MASKED) if verifier is None else sql.Literal(verifier)
        first = (sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(role, password) if exists else
                 sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(role, password))
        return [first, sql.SQL("GRANT {} TO {}").format(group, role),
                sql.SQL("ALTER ROLE {} SET role = {}").format(role, sql.Literal(self.params["group_role"]))]

    def _exists(self, identity):
        return bool(self._run(sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = %s"), (identity,)))

    def create_plan(self, identity, version):
        return [s.as_string(self.conn) for s in self._create_statements(identity, None, self._exists(identity))]

    def create(self, identity, value):
        # The server gets a SCRAM verifier computed here, as psql's \password does: the password itself never
        # travels, so it cannot land in the server log or pg_stat_statements.
        verifier = self.conn.pgconn.encrypt_password(value.encode(), identity.encode(), b"scram-sha-256").decode()
        done = []
        for masked, statement in zip(self._create_statements(identity, None, self._exists(identity)),
                                     self._create_statements(identity, verifier, self._exists(identity)),
                                     strict=True):
            shown = masked.as_string(self.conn)
            self._run(statement, shown=shown)
            done.append(shown)
        return done

    def store(self, old_identity, old_value, identity, value):
        self.backend.write_secret(self.params["secret"], value)
        self.backend.write_setting(self.params["user_setting"], identity)

    def restore(self, old_identity, old_value):
        self.backend.write_secret(self.params["secret"], old_value or "")
        self.backend.write_setting(self.params["user_setting"], old_identity)

    def accepts(self, identity, value):
        kwargs = connection_kwargs(dict(self.params["postgres"], login_user=identity, login_password=value),
                                   application_name="ops.runbooks secret_rotate check")
        try:
            with psycopg.connect(**kwargs) as conn:
                return conn.execute("SELECT session_user").fetchone()[0] == identity
        except psycopg.OperationalError as exc:
            if any(text in str(exc) for text in _PG_REFUSED):
                return False
            raise RunbookError(f"postgres: checking the credential of {identity} failed: {_first_line(exc)}") from None

    def _retire_statements(self, identity):
        role = sql.Identifier(identity)
        return [sql.SQL("ALTER ROLE {} WITH NOLOGIN PASSWORD NULL").format(role),
                sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}").format(
                    sql.Literal(identity))]

    def retire_plan(self, identity):
        return [s.as_string(self.conn) for s in self._retire_statements(identity)]

    def retire(self, identity, value):
        done = []
        for statement in self._retire_statements(identity):
            self._run(statement)
            done.append(statement.as_string(self.conn))
        return done

    def drop(self, identity, value):
        return self.retire(identity, value) if self._exists(identity) else []


class RedisAcl(Credential):
    """A Redis ACL user holds the old and the new password during the change; each is sent as its SHA-256."""

    kind = "redis_acl"

    def __init__(self, params, backend, remember):
        super().__init__(params, backend, remember)
        self._client = None

    @staticmethod
    def validate(params):
        if not params.get("redis"):
            raise ParameterError("redis", "required for kind redis_acl (at least host)")
        if not params["redis"].get("host"):
            raise ParameterError("redis.host", "required for kind redis_acl")
        port = params["redis"].get("port")
        if port is not None and not 1 <= port <= 65535:
            raise ParameterError("redis.port", f"must be between 1 and 65535, got {port}")
        for key, value in (("acl_user", params.get("acl_user")), ("redis.username", params["redis"].get("username"))):
            if value is not None and not _REDIS_USER.match(value):
                raise ParameterError(key, f"{value!r} is not a valid Redis user name: letters, digits, '_', '.', '@' "
                                          "or '-', at most 64 characters")

    def requirement(self):
        return REDIS_REQUIREMENT

    def _connect(self, username, password):
        r = self.params["redis"]
        return redis.Redis(host=r["host"], port=r.get("port") or 6379, username=username, password=password,
                           ssl=bool(r.get("tls")), socket_timeout=10, socket_connect_timeout=10)

    def _admin_client(self):
        r = self.params["redis"]
        if r.get("password"):
            candidates = [(r.get("username"), r["password"])]
        else:
            # No admin credential given: the rotated user administers itself with whichever of its values the store
            # holds (live, or staged while a rotation runs); which one works changes as the rotation goes on.
            secret = self.params["secret"]
            candidates = [(self.params["acl_user"], v) for v in (
                self.backend.read_secret(secret), self.backend.read_secret(secret, "pending"),
                self.backend.read_secret(secret, "prior")) if v]
        last = "no credential to try: set redis.password"
        for username, password in candidates:
            self.remember(password)
            client = self._connect(username, password)
            try:
                client.ping()
                return client
            except redis.AuthenticationError as exc:
                last = str(exc)
                client.close()
            except redis.RedisError as exc:
                client.close()
                raise RunbookError(f"redis {r['host']}:{r.get('port') or 6379}: {exc}; check the redis options "
                                   "and that the server runs") from None
        raise RunbookError(f"redis {r['host']}:{r.get('port') or 6379}: authentication failed ({last}); "
                           "set redis.username and redis.password to an ACL admin")

    def _admin(self, what, call):
        """Run ``call(client)`` as the admin. Redis may drop a connection whose password was just removed: then
        connect again with whichever value works now, once."""
        for attempt in (1, 2):
            if self._client is None:
                self._client = self._admin_client()
            try:
                return call(self._client)
            except (redis.AuthenticationError, redis.ConnectionError) as exc:
                self.close()
                if attempt == 2:
                    raise RunbookError(f"redis: {what} failed: {exc}") from None
            except redis.RedisError as exc:
                raise RunbookError(f"redis: {what} failed: {exc}") from None

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def current_identity(self):
        return self.params["acl_user"]

    def observe(self, identities):
        user = self._getuser()
        if user is None:
            raise RunbookError(f"redis has no ACL user {self.params['acl_user']!r}; create it first",
                               parameter="acl_user")
        self.password_hashes = set(user.get("passwords") or [])
        return {"acl_user": self.params["acl_user"], "passwords": len(self.password_hashes),
                "enabled": "on" in (user.get("flags") or [])}

    def _getuser(self):
        return self._admin(f"ACL GETUSER {self.params['acl_user']} (the admin needs +acl)",
                           lambda c: c.acl_getuser(self.params["acl_user"]))

    def _has(self, value):
        return _sha256(value) in ((self._getuser() or {}).get("passwords") or [])

    def _setuser(self, rule):
        user = self.params["acl_user"]
        self._admin(f"ACL SETUSER {user}", lambda c: c.execute_command("ACL", "SETUSER", user, rule))
        if self._admin("CONFIG GET aclfile", lambda c: c.config_get("aclfile").get("aclfile")):
            self._admin("ACL SAVE", lambda c: c.execute_command("ACL", "SAVE"))  # an ACL file survives restarts

    def create_plan(self, identity, version):
        return [f"ACL SETUSER {identity} #<sha256 of version {version}>"]

    def create(self, identity, value):
        if not self._has(value):
            self._setuser("#" + _sha256(value))
        return [f"ACL SETUSER {identity} #<sha256 of the new password>"]

    def accepts(self, identity, value):
        client = self._connect(identity, value)
        try:
            return client.ping() is True
        except redis.AuthenticationError:
            return False
        except redis.RedisError as exc:
            raise RunbookError(f"redis: checking the credential of {identity} failed: {exc}") from None
        finally:
            client.close()

    def retire_plan(self, identity):
        return [f"ACL SETUSER {identity} !<sha256 of the old password>"]

    def retire(self, identity, value):
        if not value:
            return []
        if self._has(value):  # a resumed run may find it removed already
            self._setuser("!" + _sha256(value))
        return [f"ACL SETUSER {identity} !<sha256 of the old password>"]

    def drop(self, identity, value):
        if self._has(value):
            self._setuser("!" + _sha256(value))
        return [f"ACL SETUSER {identity} !<sha256 of the new password>"]


class AppSecret(Credential):
    """A key the application itself checks (a JWT signing key): consumers sign with the current value and accept
    the current and the previous one, so tokens issued before the switch stay valid until the old key retires."""

    kind = "app_secret"
    retire_rolls_consumers = True

    @staticmethod
    def validate(params):
        if not params.get("previous_secret"):
            raise ParameterError("previous_secret", "required for kind app_secret: the store entry consumers read "
                                                    "the previous key from")
        _entry(params["previous_secret"], "previous_secret")
        if params["previous_secret"] == params["secret"]:
            raise ParameterError("previous_secret", "must differ from secret")

    def store(self, old_identity, old_value, identity, value):
        self.backend.write_secret(self.params["previous_secret"], old_value or "")
        self.backend.write_secret(self.params["secret"], value)

    def restore(self, old_identity, old_value):
        self.backend.write_secret(self.params["secret"], old_value or "")
        self.backend.write_secret(self.params["previous_secret"], "")

    def retire_plan(self, identity):
        return [f"empty {self.params['previous_secret']} so consumers stop accepting the old key"]

    def retire(self, identity, value):
        self.backend.write_secret(self.params["previous_secret"], "")
        return [f"emptied {self.params['previous_secret']}"]


KINDS = {cls.kind: cls for cls in (PostgresRole, RedisAcl, AppSecret)}
_ENTRY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _entry(value, param):
    if not isinstance(value, str) or not _ENTRY.match(value):
        raise ParameterError(param, f"{value!r} is not a valid store entry name: letters, digits, '_', '.' or '-', "
                                    "starting with a letter or digit")
    return value


def _sha256(value):
    return hashlib.sha256(value.encode()).hexdigest()


def _first_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]
