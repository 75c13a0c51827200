# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documents the options added by module_utils._common.argspec.postgres_rpo_argspec().

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  primary:
    description:
      - Connection options of the current primary, used when the server is a standby to measure its lag
        against the primary's current WAL position.
      - Options left unset are taken from the top-level connection options (SSL settings and
        O(connect_timeout) always are); the primary is always reached over TCP.
      - When the primary cannot be reached (expected during a failover), the lag is measured on the standby's
        own view, with a warning. A primary that is up but refuses the connection (for example a wrong
        password) fails the module.
    type: dict
    suboptions:
      login_host:
        description: Host of the primary.
        type: str
        required: true
      login_port:
        description: Port of the primary. Defaults to O(login_port).
        type: int
      login_user:
        description: Role to connect as. Defaults to O(login_user).
        type: str
      login_password:
        description: Password of O(primary.login_user). Defaults to O(login_password). Never returned or logged.
        type: str
      db:
        description: Database to connect to. Defaults to O(db).
        type: str
  max_lag_bytes:
    description:
      - The RPO in bytes of WAL not yet replayed, as a number of bytes or a size such as V(512kB), V(16MB),
        V(1GB) (units are powers of 1024).
    type: raw
  max_lag_seconds:
    description:
      - The RPO in time, as seconds or a duration such as V(500ms), V(30s), V(5min). An unknown lag (no
        transaction replayed since the standby started) counts as too long.
    type: raw
"""
