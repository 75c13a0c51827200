# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two-phase secret rotation: stage the new value, create it beside the old one, switch the store, roll the
consumers, verify them, retire the old credential.

Each phase is recorded in the platform's rotation state as soon as it is done (phases, versions, fingerprints;
never a value), so a run killed between two phases is resumed, or rolled back, by the next one. New and old values
live only in the secret store (its ``pending`` and ``prior`` entries while the rotation runs).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
from datetime import UTC, datetime

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import select_backend
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    platform_argspec,
    postgres_connection_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import Stopwatch, wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step
from ansible_collections.ops.runbooks.plugins.module_utils._procedures._credentials import (
    KINDS,
    _entry,
    fingerprint,
)
from ansible_collections.ops.runbooks.plugins.module_utils._procedures._rolling import roll

PHASES = ("staged", "created", "stored", "rolled", "verified", "retired")
# Test-only fault point: "<rotation name>:<phase>" kills the module process right after that phase is recorded,
# exactly as an operator's Ctrl-C or a lost host would, so resuming can be tested against real servers.
FAULT_ENV = "OPS_RUNBOOKS_SECRET_ROTATE_FAULT"
HISTORY_LIMIT = 20
MIN_LENGTH = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _now():
    return datetime.now(UTC).isoformat(timespec="seconds")


class SecretRotate(Procedure):
    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                name=dict(type="str", required=True),
                kind=dict(type="str", required=True, choices=sorted(KINDS)),
                secret=dict(type="str", required=True, no_log=False),
                consumers=dict(type="list", elements="str", default=[]),
                consumer_check=dict(type="dict", options=dict(port=dict(type="int", required=True),
                                                              path=dict(type="str", default="/"))),
                max_age=dict(type="raw"),
                force=dict(type="bool", default=False),
                interrupted=dict(type="str", default="resume", choices=["resume", "rollback"]),
                length=dict(type="int", default=32),
                roll_timeout=dict(type="raw", default=120),
                stop_timeout=dict(type="raw"),
                postgres=dict(type="dict", options=postgres_connection_argspec().argument_spec),
                group_role=dict(type="str"),
                login_roles=dict(type="list", elements="str"),
                user_setting=dict(type="str"),
                redis=dict(type="dict", options=dict(host=dict(type="str"), port=dict(type="int", default=6379),
                                                     username=dict(type="str"),
                                                     password=dict(type="str", no_log=True),
                                                     tls=dict(type="bool", default=False))),
                acl_user=dict(type="str", default="default"),
                previous_secret=dict(type="str", no_log=False),
            )
        )
        return spec.merge(platform_argspec()).merge(verify_argspec())

    # -- validate -----------------------------------------------------------------------------------
    def validate(self):
        p = self.params
        if not _NAME.match(p["name"]):
            raise ParameterError("name", f"{p['name']!r} is not a valid rotation name: letters, digits, '_', '.' "
                                         "or '-', starting with a letter or digit, at most 64 characters")
        _entry(p["secret"], "secret")
        for i, service in enumerate(p["consumers"]):
            if not isinstance(service, str) or not _NAME.match(service):
                raise ParameterError(f"consumers[{i}]", f"{service!r} is not a valid service name")
        check = p["consumer_check"]
        if check is not None:
            if not 1 <= check["port"] <= 65535:
                raise ParameterError("consumer_check.port", f"must be between 1 and 65535, got {check['port']}")
            if not check["path"].startswith("/") or any(c.isspace() for c in check["path"]):
                raise ParameterError("consumer_check.path", "must start with '/' and hold no spaces")
            if not p["consumers"]:
                raise ParameterError("consumer_check", "needs consumers: the services whose replicas it asks")
        self.max_age = validate.positive(validate.duration_seconds(p["max_age"], "max_age"), "max_age")
        self.roll_timeout = validate.positive(validate.duration_seconds(p["roll_timeout"], "roll_timeout"),
                                              "roll_timeout")
        self.stop_timeout = validate.duration_seconds(p["stop_timeout"], "stop_timeout")
        if p["length"] < MIN_LENGTH or p["length"] > 512:
            raise ParameterError("length", f"must be between {MIN_LENGTH} and 512 bytes of randomness, "
                                           f"got {p['length']}")
        cls = KINDS[p["kind"]]
        cls.validate(p)
        self.backend = self.own(select_backend(p["platform"], p["platform_settings"], self.check_mode))
        self.cred = self.own(cls(p, self.backend, self.remember))
        requirement = self.cred.requirement()
        if requirement and not requirement[1]:
            raise RunbookError(f"kind {p['kind']}: {missing_required_lib(requirement[0])}", exception=requirement[2])
        self.lock = self.own(contextlib.ExitStack())

    def remember(self, value):
        if value:
            self.module.no_log_values.add(value)
        return value

    # -- observe / plan -----------------------------------------------------------------------------
    def _read(self, staged=None):
        return self.remember(self.backend.read_secret(self.params["secret"], staged))

    def observe(self):
        p = self.params
        state = self.backend.read_rotation_state(p["name"]) or {}
        if state.get("kind") not in (None, p["kind"]):
            raise ParameterError("kind", f"rotation {p['name']} was recorded as kind {state['kind']}, not "
                                         f"{p['kind']}; use another name for another credential")
        if state.get("secret") not in (None, p["secret"]):
            raise ParameterError("secret", f"rotation {p['name']} rotates {state['secret']}, not {p['secret']}; use "
                                           "another name for another credential")
        self.state = state
        self.live_value = self._read()
        identity = self.cred.current_identity()
        rotation = state.get("rotation")
        identities = [identity] + ([rotation["old"]["identity"], rotation["new"]["identity"]] if rotation else
                                   [self.cred.next_identity(identity)])
        return {
            "name": p["name"],
            "kind": p["kind"],
            "version": state.get("version", 0),
            "fingerprint": fingerprint(self.live_value),
            "identity": identity,
            "rotated_at": state.get("rotated_at"),
            "in_progress": {"phases": list(rotation["phases"]), "to_version": rotation["new"]["version"]}
            if rotation else None,
            "server": self.cred.observe(identities),
        }

    def due(self, before):
        """Why a new rotation starts now, or None."""
        if self.params["force"]:
            return "force"
        if not self.state.get("version"):
            return "never rotated by this module"
        if (self.state.get("fingerprint"), self.state.get("identity")) != (before["fingerprint"], before["identity"]):
            self.warnings.append(f"the value of {self.params['secret']} (or its login) differs from recorded version "
                                 f"{self.state['version']} (changed outside this module); rotating it")
            return "changed outside this module"
        if self.max_age is not None:
            age = (datetime.now(UTC) - datetime.fromisoformat(self.state["rotated_at"])).total_seconds()
            if age >= self.max_age:
                return f"version {self.state['version']} is {int(age)}s old, max_age is {int(self.max_age)}s"
        return None

    def plan(self, before):
        p = self.params
        self.reason = None
        self.resumed_from = None
        self.rolling_back = False
        rotation = self.state.get("rotation")
        if rotation:
            self.rotation = rotation
            done = rotation["phases"]
            if p["interrupted"] == "rollback":
                if "retired" in done:
                    raise RunbookError(f"rotation {p['name']} cannot be rolled back: the old credential is retired "
                                       "already; run again with interrupted=resume to finish it")
                self.rolling_back = True
                self.reason = f"roll back the rotation interrupted after phase {done[-1]}"
                return self.rollback_steps(done)
            self.resumed_from = done[-1]
            self.reason = f"resume the rotation interrupted after phase {done[-1]}"
            return [self.phase_step(phase) for phase in PHASES if phase not in done] + [self.complete_step()]
        self.reason = self.due(before)
        if self.reason is None:
            return []
        version = before["version"] + 1
        self.rotation = {
            "started_at": _now(), "phases": [], "seconds": {},
            "old": {"version": before["version"], "identity": before["identity"], "fingerprint": before["fingerprint"]},
            "new": {"version": version, "identity": self.cred.next_identity(before["identity"]), "fingerprint": None},
        }
        return [self.phase_step(phase) for phase in PHASES] + [self.complete_step()]

    # -- steps --------------------------------------------------------------------------------------
    def phase_step(self, phase):
        r, p = self.rotation, self.params
        old, new = r["old"], r["new"]
        consumers = ", ".join(p["consumers"]) or "none named"
        if phase == "staged":
            text = f"stage version {new['version']} of {p['secret']} (new random value in the store, mode 0600)"
        elif phase == "created":
            statements = self.cred.create_plan(new["identity"], new["version"])
            text = ("create the new credential beside the old one: "
                    + ("; ".join(statements) or "nothing at a server (the consumers check it themselves)"))
        elif phase == "stored":
            who = f", consumers log in as {new['identity']}" if new["identity"] != old["identity"] else ""
            text = f"switch {p['secret']} to version {new['version']}{who}"
        elif phase == "rolled":
            text = f"roll the consumers ({consumers}) one replica at a time"
        elif phase == "verified":
            text = (f"verify {new['identity'] or 'the consumers'} with version {new['version']}"
                    + (f" and that every replica of {consumers} reports its fingerprint"
                       if p["consumer_check"] else ""))
        else:
            text = f"retire version {old['version']}: {'; '.join(self.cred.retire_plan(old['identity']))}"
            if self.cred.retire_rolls_consumers and p["consumers"]:
                text += f"; roll the consumers ({consumers}) again"
        return Step(text, lambda: self.run_phase(phase), phase=phase)

    def complete_step(self):
        return Step(f"record version {self.rotation['new']['version']} as current and remove the staged values",
                    self.complete, phase="complete")

    def run_phase(self, phase):
        self.take_lock()
        watch = Stopwatch()
        actions = getattr(self, f"_{phase}")() or []
        self.rotation["phases"].append(phase)
        self.rotation["seconds"][phase] = watch.elapsed
        self.save()
        fault = os.environ.get(FAULT_ENV)
        if fault and fault == f"{self.params['name']}:{phase}":
            os.kill(os.getpid(), signal.SIGKILL)
        return {"phase": phase, "seconds": watch.elapsed, "actions": actions}

    def take_lock(self):
        if getattr(self, "_locked", False):
            return
        self.lock.enter_context(self.backend.rotation_lock(self.params["name"]))
        self._locked = True
        recorded = self.backend.read_rotation_state(self.params["name"]) or {}
        if recorded != self.state:
            raise RunbookError(f"rotation {self.params['name']} was changed by another run while this one planned; "
                               "run again")

    def save(self):
        state = dict(self.state, name=self.params["name"], kind=self.params["kind"], secret=self.params["secret"],
                     rotation=self.rotation, updated_at=_now())
        self.backend.write_rotation_state(self.params["name"], state)
        self.state = state

    # values, read back from the store when a run resumes
    def new_value(self):
        if getattr(self, "_new", None) is None:
            staged = "stored" not in self.rotation["phases"]
            self._new = self._read("pending" if staged else None)
            if fingerprint(self._new) != self.rotation["new"]["fingerprint"]:
                where = f"the pending entry of {self.params['secret']}" if staged else self.params["secret"]
                raise RunbookError(f"rotation {self.params['name']}: {where} does not hold version "
                                   f"{self.rotation['new']['version']} any more (fingerprint "
                                   f"{fingerprint(self._new)}, recorded {self.rotation['new']['fingerprint']}); "
                                   "it was changed outside this module: check it by hand")
        return self._new

    def old_value(self):
        if self.rotation["old"]["fingerprint"] is None:
            return None
        if getattr(self, "_old", None) is None:
            self._old = self._read("prior")
            if fingerprint(self._old) != self.rotation["old"]["fingerprint"]:
                raise RunbookError(f"rotation {self.params['name']}: the prior entry of {self.params['secret']} does "
                                   f"not hold version {self.rotation['old']['version']}; check it by hand")
        return self._old

    def _staged(self):
        value = self.remember(secrets.token_urlsafe(self.params["length"]))
        self.backend.write_secret(self.params["secret"], value, "pending")
        if self.live_value:
            self.backend.write_secret(self.params["secret"], self.live_value, "prior")
        self._new, self._old = value, self.live_value
        self.rotation["new"]["fingerprint"] = fingerprint(value)
        return [f"pending {self.params['secret']} = version {self.rotation['new']['version']}"]

    def _created(self):
        return self.cred.create(self.rotation["new"]["identity"], self.new_value())

    def _stored(self):
        old, new = self.rotation["old"], self.rotation["new"]
        new_value, old_value = self.new_value(), self.old_value()
        self.cred.store(old["identity"], old_value, new["identity"], new_value)
        self.backend.remove_staged_secret(self.params["secret"], "pending")
        return [f"{self.params['secret']} = version {new['version']}"]

    def _roll_consumers(self):
        return [dict(service=s, restarted=roll(self.backend, s, self.roll_timeout, self.stop_timeout))
                for s in self.params["consumers"]]

    def _rolled(self):
        return self._roll_consumers()

    def _check_consumers(self, wanted, unwanted=None):
        """Every replica of every consumer answers ``consumer_check`` mentioning ``wanted`` (and not ``unwanted``)."""
        check = self.params["consumer_check"]
        if check is None:
            return []
        found = []
        for service in self.params["consumers"]:
            def reports(service=service):
                answers = self.backend.replica_get(service, check["port"], check["path"])
                wrong = [a["replica"] for a in answers if a["status"] != 200 or wanted not in (a["body"] or "")
                         or (unwanted and unwanted in a["body"])]
                if not answers or wrong:
                    raise RunbookError(f"{', '.join(wrong) or 'no replica'} of {service} do not report the expected "
                                       "credential fingerprint")
                return [a["replica"] for a in answers]

            replicas, _waited = wait_until(reports, self.roll_timeout, 1.0,
                                           what=f"the replicas of {service} to use the new credential")
            found += replicas
        return [f"{name} reports {wanted}" for name in found]

    def _verified(self):
        new = self.rotation["new"]
        accepted = self.cred.accepts(new["identity"], self.new_value())
        if accepted is False:
            raise RunbookError(f"rotation {self.params['name']}: the server refuses {new['identity']} with version "
                               f"{new['version']}; the old credential still works, nothing is lost")
        done = [f"{new['identity']} accepted with version {new['version']}"] if accepted else []
        return done + self._check_consumers(new["fingerprint"])

    def _retired(self):
        old, new = self.rotation["old"], self.rotation["new"]
        old_value = self.old_value()
        if old_value is None:
            return ["no old value to retire"]
        done = self.cred.retire(old["identity"], old_value)
        if self.cred.retire_rolls_consumers:
            done += [f"rolled {r['service']}" for r in self._roll_consumers()]
            done += self._check_consumers(new["fingerprint"], unwanted=old["fingerprint"])
        if self.cred.accepts(old["identity"], old_value):
            raise RunbookError(f"rotation {self.params['name']}: {old['identity']} still logs in with version "
                               f"{old['version']} after retirement; check the server by hand")
        return done

    def complete(self):
        self.take_lock()
        new = self.rotation["new"]
        for staged in ("pending", "prior"):
            self.backend.remove_staged_secret(self.params["secret"], staged)
        history = list(self.state.get("history") or [])
        history.append({"version": new["version"], "identity": new["identity"], "fingerprint": new["fingerprint"],
                        "rotated_at": _now(), "phases_seconds": self.rotation["seconds"]})
        state = {k: v for k, v in self.state.items() if k != "rotation"}
        state.update(version=new["version"], identity=new["identity"], fingerprint=new["fingerprint"],
                     rotated_at=history[-1]["rotated_at"], history=history[-HISTORY_LIMIT:], updated_at=_now())
        self.backend.write_rotation_state(self.params["name"], state)
        self.state = state
        return {"phase": "complete", "version": new["version"]}

    # -- rolling back -------------------------------------------------------------------------------
    def rollback_steps(self, done):
        r = self.rotation
        steps = []
        if "stored" in done:
            steps.append(Step(f"put version {r['old']['version']} of {self.params['secret']} back in the store",
                              self._undo_store, phase="undo stored"))
            if self.params["consumers"]:
                steps.append(Step(f"roll the consumers ({', '.join(self.params['consumers'])}) back to version "
                                  f"{r['old']['version']}", self._undo_roll, phase="undo rolled"))
        if "created" in done:
            steps.append(Step(f"withdraw version {r['new']['version']} at the server", self._undo_create,
                              phase="undo created"))
        steps.append(Step(f"forget version {r['new']['version']} and remove the staged values", self._undo_finish,
                          phase="undo staged"))
        return steps

    def _forget(self, *phases):
        self.rotation["phases"] = [ph for ph in self.rotation["phases"] if ph not in phases]
        self.save()

    def _undo_store(self):
        self.take_lock()
        # Withdrawing the new credential at the server needs its value: back to the pending entry it came from.
        self.backend.write_secret(self.params["secret"], self.new_value(), "pending")
        self.cred.restore(self.rotation["old"]["identity"], self.old_value())
        self._forget("stored", "rolled", "verified")
        return {"phase": "undo stored"}

    def _undo_roll(self):
        self.take_lock()
        return {"phase": "undo rolled", "actions": self._roll_consumers()}

    def _undo_create(self):
        self.take_lock()
        actions = self.cred.drop(self.rotation["new"]["identity"], self.new_value())
        self._forget("created")
        return {"phase": "undo created", "actions": actions}

    def _undo_finish(self):
        self.take_lock()
        for staged in ("pending", "prior"):
            self.backend.remove_staged_secret(self.params["secret"], staged)
        state = {k: v for k, v in self.state.items() if k != "rotation"}
        state.update(last_rollback={"version": self.rotation["new"]["version"], "at": _now()}, updated_at=_now())
        self.backend.write_rotation_state(self.params["name"], state)
        self.state = state
        return {"phase": "undo staged"}

    def rollback(self, before, applied, error):
        """A failed phase before retirement puts the old credential back; later, the state is kept for a resume."""
        if self.rolling_back or not getattr(self, "rotation", None) or not getattr(self, "_locked", False):
            return []
        done = self.rotation["phases"]
        if not done:
            with contextlib.suppress(RunbookError):
                self.backend.remove_staged_secret(self.params["secret"], "pending")
            error.details["resume"] = "nothing was changed"
            return []
        if "rotation" not in self.state:
            error.details["resume"] = "the rotation completed before this failure; nothing to resume"
            return []
        if "verified" in done:
            error.details["resume"] = "the consumers use the new credential; the state is kept: run again to resume"
            return []
        undone = []
        try:
            for step in self.rollback_steps(list(done)):
                step.apply()
                undone.append(step.describe())
        except RunbookError as exc:
            error.details["rollback_error"] = exc.msg
        return undone

    # -- results ------------------------------------------------------------------------------------
    def project(self, before, steps):
        if self.rolling_back:
            return dict(before, in_progress=None)
        new = self.rotation["new"]
        return dict(before, version=new["version"], identity=new["identity"], fingerprint="(new)",
                    in_progress=None, rotated_at="(now)")

    def report(self, before, after, steps):
        result = {"name": self.params["name"], "kind": self.params["kind"], "reason": self.reason,
                  "resumed_from": self.resumed_from, "rolled_back": self.rolling_back and not self.check_mode,
                  "version": after["version"], "fingerprint": after["fingerprint"], "identity": after["identity"]}
        if steps and not self.rolling_back:
            old = self.rotation["old"]
            result["previous"] = {"version": old["version"], "fingerprint": old["fingerprint"],
                                  "identity": old["identity"]}
        result["phases"] = [] if self.check_mode else [s.outcome for s in steps]
        return result
