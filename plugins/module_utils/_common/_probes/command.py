# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command probe: a program run without a shell exits with the expected code and, optionally, prints output
that matches a pattern."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil

from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import Probe, ProbeFailed
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError
from ansible_collections.ops.runbooks.plugins.module_utils._common.validate import duration_seconds, positive

OUTPUT_LIMIT = 64 * 1024
DEFAULT_TIMEOUT = 30


class CommandProbe(Probe):
    type = "command"
    options = dict(argv=dict(type="list", elements="str"), rc=dict(type="int"), stdout_regex=dict(type="str"),
                   timeout=dict(type="raw"))
    defaults = dict(rc=0, timeout=DEFAULT_TIMEOUT)
    required = ("argv",)

    def validate(self):
        f = self.fields
        if not f["argv"] or not all(isinstance(a, str) for a in f["argv"]) or not f["argv"][0]:
            raise ParameterError(self.param("argv"), "give the program and its arguments as a list of strings, "
                                                     "such as [systemctl, is-active, nginx] (no shell)")
        program = f["argv"][0]
        found = program if os.sep in program else shutil.which(program)
        if not found or not os.access(found, os.X_OK) or os.path.isdir(found):
            raise ParameterError(self.param("argv"), f"{program!r} is not an executable program on this host "
                                                     "(nor on its PATH)")
        self.timeout = positive(duration_seconds(f["timeout"], self.param("timeout")), self.param("timeout"))
        if f["stdout_regex"] is not None:
            try:
                self.pattern = re.compile(f["stdout_regex"])
            except re.error as exc:
                raise ParameterError(self.param("stdout_regex"), f"not a valid regular expression: {exc}") from None

    @property
    def address(self):
        return shlex.join(self.fields["argv"])

    def default_name(self):
        return f"command {self.address}"

    async def check(self):
        f = self.fields
        proc = await asyncio.create_subprocess_exec(*f["argv"], stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(self.timeout):
                stdout, stderr = await proc.communicate()
        except TimeoutError:
            raise ProbeFailed(f"did not exit within timeout {self.timeout}s") from None
        finally:
            # Timed out here, or cancelled by the runner's overall deadline: no process outlives its probe.
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        detail = {"rc": proc.returncode}
        if proc.returncode != f["rc"]:
            last = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no stderr"]
            raise ProbeFailed(f"exit code {proc.returncode}, expected {f['rc']} ({last[0][:200]})", **detail)
        if f["stdout_regex"] is not None:
            if not self.pattern.search(stdout[:OUTPUT_LIMIT].decode(errors="replace")):
                raise ProbeFailed(f"output does not match {f['stdout_regex']!r} (first {OUTPUT_LIMIT} bytes searched)",
                                  **detail)
        return detail
