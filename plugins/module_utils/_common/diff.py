# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Track before/after values of named properties to build ``diff`` and decide ``changed``."""

from __future__ import annotations


class DifferenceTracker:
    def __init__(self):
        self._items = {}

    def add(self, name, before, after):
        self._items[name] = (before, after)

    @property
    def changed(self):
        return any(before != after for before, after in self._items.values())

    def differences(self):
        return [{"name": k, "before": b, "after": a} for k, (b, a) in self._items.items() if b != a]

    def before(self):
        return {k: b for k, (b, _a) in self._items.items()}

    def after(self):
        return {k: a for k, (_b, a) in self._items.items()}

    def as_diff(self):
        return {"before": self.before(), "after": self.after()}
