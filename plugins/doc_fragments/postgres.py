# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documents the options added by module_utils._common.argspec.postgres_connection_argspec().

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host running the database server. Empty means the local Unix socket.
    type: str
    default: ''
    aliases: [host]
  login_port:
    description:
      - Database port to connect to.
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description:
      - The role to connect as.
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description:
      - The password of O(login_user). Never returned or logged.
    type: str
    default: ''
  login_unix_socket:
    description:
      - Directory of the Unix socket; wins over O(login_host) when set.
    type: str
    default: ''
    aliases: [unix_socket]
  db:
    description:
      - Name of the database to connect to.
    type: str
    default: postgres
    aliases: [login_db]
  ssl_mode:
    description:
      - libpq SSL mode. See U(https://www.postgresql.org/docs/current/libpq-ssl.html).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of trusted certificate authorities used to verify the server certificate.
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description:
      - Client certificate file.
    type: path
  ssl_key:
    description:
      - Private key of O(ssl_cert).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for a connection before failing.
    type: int
    default: 10
requirements:
  - psycopg >= 3.1
notes:
  - Connection options can be set once for every module of the collection with
    C(module_defaults) and the action group C(group/ops.runbooks.postgresql).
"""
