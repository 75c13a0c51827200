"""Test wiring shared by unit and integration tests.

Makes ``ansible_collections.ops.runbooks`` importable from the checkout (through the
``.collections`` link) and provides the helpers that run modules through real ``ansible-playbook``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".collections"
for path in (str(COLLECTIONS), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

pytest_plugins = ["tests.helpers.fixtures"]


def pytest_terminal_summary(terminalreporter):
    """Figures tests measured (the DR drill's RTO and RPO), printed after the results."""
    from tests.helpers.summary import LINES

    if LINES:
        terminalreporter.section("measured")
        for line in LINES:
            terminalreporter.write_line(line)
