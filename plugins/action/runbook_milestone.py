# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ops.runbooks.runbook_milestone: runs on the controller, measures RTO and RPO."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError

FACT = "runbook_rto_clock"
ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    at=dict(type="raw"),
    starts_rto=dict(type="bool", default=False),
    ends_rto=dict(type="bool", default=False),
    rto_target=dict(type="raw"),
    lost_rows=dict(type="int"),
    rpo_target=dict(type="int"),
    fail_on_breach=dict(type="bool", default=True),
)


def parse_time(value, param="at"):
    """Epoch seconds (number or numeric string) or an ISO 8601 timestamp (naive means UTC) -> epoch float."""
    if value is None or value == "":
        return time.time()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(param, f"{value!r} is neither epoch seconds nor an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def assess(args, clock, now):
    """The milestone record, the RTO clock fact to keep, and the breaches (pure, for the unit tests)."""
    name = args["name"]
    at = now if args["at"] in (None, "") else parse_time(args["at"])
    if at > now + 5:
        raise ParameterError("at", f"{args['at']!r} is in the future; give the time the milestone happened")
    target = validate.duration_seconds(args["rto_target"], "rto_target")
    if args["starts_rto"] and args["ends_rto"]:
        raise ParameterError("ends_rto", "a milestone cannot both start and end the RTO clock")
    if args["lost_rows"] is not None and args["lost_rows"] < 0:
        raise ParameterError("lost_rows", f"must be zero or more, got {args['lost_rows']}")
    if args["rpo_target"] is not None and args["rpo_target"] < 0:
        raise ParameterError("rpo_target", f"must be zero or more, got {args['rpo_target']}")
    if args["rpo_target"] is not None and args["lost_rows"] is None:
        raise ParameterError("lost_rows", "is required with rpo_target: give the counted rows lost")
    record = {"name": name, "at": at, "rto": None, "rpo": None}
    breaches = []
    if args["starts_rto"]:
        clock = {"started_at": at, "start_milestone": name, "target_seconds": target}
    elif args["ends_rto"]:
        if not clock:
            raise ParameterError("ends_rto", "no milestone with starts_rto ran before this one in the play; "
                                             "start the RTO clock first")
        target = target if target is not None else clock.get("target_seconds")
        measured = round(at - clock["started_at"], 3)
        met = None if target is None else measured <= target
        record["rto"] = {"measured_seconds": measured, "target_seconds": target, "met": met,
                         "from": clock["start_milestone"], "started_at": clock["started_at"]}
        if met is False:
            breaches.append(f"RTO breached: service verified {measured:.1f}s after {clock['start_milestone']}, "
                            f"target {target:g}s")
    elif target is not None and clock:
        clock = dict(clock, target_seconds=target)
    if args["lost_rows"] is not None:
        target_rows = args["rpo_target"]
        met = None if target_rows is None else args["lost_rows"] <= target_rows
        record["rpo"] = {"lost_rows": args["lost_rows"], "target_rows": target_rows, "met": met}
        if met is False:
            breaches.append(f"RPO breached: {args['lost_rows']} committed row(s) lost, target {target_rows}")
    record["breaches"] = breaches
    if clock and not args["ends_rto"]:
        record["rto_clock"] = {"started_at": clock["started_at"], "target_seconds": clock.get("target_seconds"),
                               "elapsed_seconds": round(now - clock["started_at"], 3)}
    return record, clock, breaches


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        task_vars = task_vars or {}
        clock = (task_vars.get("ansible_facts") or {}).get(FACT) or task_vars.get(FACT) or {}
        try:
            record, clock, breaches = assess(args, clock, time.time())
        except ParameterError as exc:
            raise AnsibleActionFail(exc.msg) from None
        result.update(changed=False, runbook_milestone=record, ansible_facts={FACT: clock})
        if breaches and args["fail_on_breach"]:
            result.update(failed=True, msg="; ".join(breaches))
        return result
