# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis probe: authenticate (password, optionally an ACL user) and PING."""

from __future__ import annotations

import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import Probe, ProbeFailed, port

try:
    import redis.asyncio as aioredis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    HAS_REDIS, REDIS_IMPORT_ERROR = True, None
except ImportError:
    HAS_REDIS, REDIS_IMPORT_ERROR = False, traceback.format_exc()


class RedisProbe(Probe):
    type = "redis"
    options = dict(host=dict(type="str"), port=dict(type="int"), username=dict(type="str"),
                   password=dict(type="str", no_log=True))
    defaults = dict(port=6379)
    required = ("host",)
    requirement = ("redis", HAS_REDIS, REDIS_IMPORT_ERROR)

    def validate(self):
        port(self.fields["port"], self.param("port"))

    async def check(self):
        f = self.fields
        # The client's own retries and socket timeouts are off: the runner owns retries and deadlines.
        client = aioredis.Redis(host=f["host"], port=f["port"], username=f["username"], password=f["password"],
                                socket_timeout=None, socket_connect_timeout=None, retry=Retry(NoBackoff(), 0),
                                single_connection_client=True)
        try:
            answer = await client.ping()
        finally:
            await client.aclose()
        detail = {"username": f["username"]}
        if answer is not True:
            raise ProbeFailed(f"PING answered {answer!r} instead of PONG", **detail)
        return detail
