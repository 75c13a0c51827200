"""What the single-daemon labs (DNS, Redis) share: a state directory with a JSON state file and a pid file.

A lab is a dataclass with a ``base`` field; subclasses name their daemon's files with ``DAEMON``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import asdict
from pathlib import Path


def alive(pid: int) -> bool:
    """True when ``pid`` runs. PID 1 here may not reap orphans, so a killed daemon can linger as a zombie
    (which ``kill(pid, 0)`` still finds): that counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class DaemonState:
    DAEMON = "daemon"

    @property
    def state_file(self) -> Path:
        return Path(self.base) / "lab.json"

    @property
    def pidfile(self) -> Path:
        return Path(self.base) / f"{self.DAEMON}.pid"

    @property
    def logfile(self) -> Path:
        return Path(self.base) / f"{self.DAEMON}.log"

    def save(self) -> None:
        # The state holds the lab's secrets (passwords, TSIG keys): owner-only.
        self.state_file.write_text(json.dumps(asdict(self), indent=2))
        self.state_file.chmod(0o600)

    @classmethod
    def load(cls, base):
        f = Path(base) / "lab.json"
        return cls(**json.loads(f.read_text())) if f.exists() else None

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    @classmethod
    def down(cls, base, purge: bool = False, timeout: float = 30) -> None:
        """SIGTERM the daemon, SIGKILL it after ``timeout``; with ``purge`` delete the state directory."""
        lab = cls.load(base)
        pid = lab.pid() if lab else None
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while lab.running() and time.monotonic() < deadline:
                time.sleep(0.1)
            if lab.running():
                os.kill(pid, signal.SIGKILL)
        if purge and Path(base).exists():
            shutil.rmtree(base)
