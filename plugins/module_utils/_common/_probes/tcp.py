# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TCP probe: the port accepts a connection."""

from __future__ import annotations

import asyncio

from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import Probe, port


class TcpProbe(Probe):
    type = "tcp"
    options = dict(host=dict(type="str"), port=dict(type="int"))
    required = ("host", "port")

    def validate(self):
        port(self.fields["port"], self.param("port"))

    async def check(self):
        _reader, writer = await asyncio.open_connection(self.fields["host"], self.fields["port"])
        peer = writer.get_extra_info("peername")
        writer.close()
        await writer.wait_closed()
        return {"peer": peer[0] if peer else None}
