"""Figures measured by tests (not asserted against a clock), printed in pytest's terminal summary."""

from __future__ import annotations

LINES: list[str] = []


def record(line: str) -> None:
    LINES.append(line)
