#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Ansible module around the netprofile binary.

It owns the mapping from Ansible's idea of a task (state, check mode, diff mode, changed) to
netprofile's commands. It decides `changed` only from `netprofile diff --json` and exit codes,
never from parsing human output, and it never writes a kernel setting or a file itself: every
change goes through `netprofile apply`, `rollback` or `confirm`, with their journal and undo.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: netprofile
short_description: Apply, roll back or confirm a netprofile kernel-tuning profile
version_added: "0.1.0"
description:
  - Runs the C(netprofile) binary on the managed host. C(changed) comes from the plan
    (C(netprofile diff --json)) and the exit codes, so check mode reports exactly what
    C(netprofile apply) would change, and changes nothing.
  - In diff mode the task shows every file C(apply) would write and every live value it would set.
  - Every change goes through C(netprofile apply), C(rollback) or C(confirm), with their journal
    and automatic undo; the module never writes a kernel setting or a file itself (except the
    temporary copy of O(content)).
options:
  profile:
    description:
      - A profile file on the managed host (it has a C(/) or ends in C(.toml)) or a shipped
        profile name such as C(high-conn).
      - With O(state=applied), one of O(profile) and O(content) is required.
      - With O(state=rolled_back), only the newest generation in force that applied this profile
        is undone (with every later one, as C(netprofile rollback N) does).
    type: str
  content:
    description:
      - The profile's TOML text itself, for O(state=applied). The module writes it to a private
        temporary file on the host for the run and removes it afterwards.
      - Its C(extends) may name shipped profiles or absolute paths only.
    type: str
  state:
    description:
      - V(applied) makes the live system and the persisted drop-ins match the profile.
      - V(rolled_back) returns to the state before the newest generation in force (an apply, a
        confirmed apply or an C(apply --pending)), of O(profile) when given. Nothing to do when
        no generation is in force; the result's C(msg) says so.
      - V(confirmed) keeps a pending C(apply --confirm); nothing to do when none is pending.
    type: str
    choices: [applied, rolled_back, confirmed]
    default: applied
  confirm:
    description:
      - With O(state=applied), apply with C(--confirm SECONDS), 1 to 86400. netprofile reverts
        by itself unless a later task with O(state=confirmed) comes in time. Files are written
        at confirm.
    type: int
  allow_override:
    description:
      - Apply even though another file (a later sysctl.d, limits.d or system.conf.d file)
        overrides a managed value at boot, login or service start (C(apply --allow-override)).
        Those values are recorded as overridden, so check and status do not report them as drift.
    type: bool
    default: false
  verify:
    description:
      - Run netprofile's connection test over loopback before and after the apply
        (C(apply --verify)) and return both reports in RV(verify). Adds tens of seconds.
      - Only when something is applied; with O(root) it needs a tree whose C(proc) is the
        running kernel's (netprofile refuses otherwise).
    type: bool
    default: false
  running:
    description:
      - Also raise the open-files limits of running processes matching each pattern (their
        C(/proc/PID/comm), or their service, such as C(nginx.service)) with prlimit(2)
        (C(apply --running)). Recorded with the generation and undone by a rollback.
      - A process below what the profile gives it is a change even when every setting is in
        sync (check mode reports it); a pattern that matches no process fails the task.
    type: list
    elements: str
    default: []
  no_persist:
    description: Change live values only; write no files (C(apply --no-persist)).
    type: bool
    default: false
  root:
    description: Operate on this directory as if it were C(/) (C(--root)); for tests and images.
    type: path
    default: /
  binary:
    description: The netprofile executable (a name looked up in PATH, or a path).
    type: str
    default: netprofile
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Check mode runs C(netprofile diff) (or reads the history) and changes nothing.
  diff_mode:
    support: full
    details: Shows each live value to set and each file to write, or to restore on rollback.
  platform:
    platforms: posix
    details: Linux only; netprofile reads and writes /proc/sys.
requirements:
  - The C(netprofile) binary on the managed host (the .deb or .rpm of netprofile), version 0.1.0
    or later.
  - Root on the managed host for O(state=applied), V(rolled_back) and V(confirmed) (use
    C(become)), unless O(root) points at a copy of the file system.
notes:
  - A failed apply is rolled back by netprofile before the task fails (exit 3); exit 4 means the
    rollback failed too and the message lists each key's state.
  - Run with C(serial) and O(confirm) across a fleet, so that a tuning that cuts hosts off undoes
    itself before it reaches the next batch.
  - Inside a container or a private network namespace netprofile applies only per-namespace keys
    and persists nothing.
seealso:
  - module: ansible.posix.sysctl
    description: Sets one sysctl key, without a plan, a journal or a rollback.
  - name: sysctl.d(5)
    description: The boot-time files netprofile writes (C(/etc/sysctl.d/90-netprofile.conf)).
    link: https://man7.org/linux/man-pages/man5/sysctl.d.5.html
  - name: limits.conf(5)
    description: The pam_limits files netprofile writes under C(/etc/security/limits.d).
    link: https://man7.org/linux/man-pages/man5/limits.conf.5.html
author:
  - netprofile maintainers (@netprofile)
"""

EXAMPLES = r"""
- name: Tune for many connections, reverting by itself unless confirmed
  netprofile.netprofile.netprofile:
    profile: high-conn
    confirm: 300
  register: tuned

- name: Still reachable? Keep it
  netprofile.netprofile.netprofile:
    state: confirmed

- name: A profile written in the playbook, accepting a later file that overrides a value
  netprofile.netprofile.netprofile:
    content: |
      [profile]
      name = "web"
      extends = ["high-conn"]

      [sysctl]
      "net.core.somaxconn" = 32768
    allow_override: true
    running:
      - nginx.service

- name: Undo the last apply of high-conn (and every later generation)
  netprofile.netprofile.netprofile:
    profile: high-conn
    state: rolled_back
"""

RETURN = r"""
plan:
  description: C(netprofile diff --json) before the task (schema in docs/schema of netprofile).
  returned: state=applied
  type: dict
generation:
  description:
    - The generation the task recorded (C(netprofile history) lists it; C(netprofile rollback N)
      undoes it). For O(state=rolled_back), the generation that recorded the rollback.
  returned: when a command recorded one
  type: int
  sample: 3
rolled_back:
  description: The generation undone (with every later one in force).
  returned: state=rolled_back and changed
  type: int
  sample: 2
verify:
  description: The connection-test reports before and after (C(apply --verify --json)).
  returned: when O(verify=true) and the profile was applied
  type: dict
changes:
  description: What the task changed (or would change in check mode), one line per item.
  returned: always
  type: list
  elements: str
rc:
  description: Exit code of the netprofile command that made the change (0 when none ran).
  returned: always
  type: int
stdout:
  description: Its standard output.
  returned: always
  type: str
stderr:
  description: Its standard error (warnings, errors).
  returned: always
  type: str
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule


class Netprofile(object):
    """Runs netprofile with the task's root, and fails the task on exit code 2 or more."""

    def __init__(self, module):
        self.module = module
        binary = module.params["binary"]
        if "/" in binary:
            self.binary = binary
        else:
            self.binary = module.get_bin_path(binary, required=True)
        self.root = module.params["root"]

    def run(self, args):
        cmd = [self.binary, "--root", self.root, "--color", "never"] + list(args)
        return self.module.run_command(cmd, environ_update={"NO_COLOR": "1"})

    def fail(self, what, rc, out, err, **extra):
        self.module.fail_json(
            msg="netprofile %s failed (exit %d): %s" % (what, rc, (err or out).strip()),
            rc=rc,
            stdout=out,
            stderr=err,
            **extra
        )

    def json(self, args, ok=(0,)):
        return self.json_rc(args, ok)[1]

    def json_rc(self, args, ok=(0,)):
        """The exit code and the parsed --json document; fails the task on another code."""
        rc, out, err = self.run(["--json"] + list(args))
        if rc not in ok:
            self.fail(" ".join(args), rc, out, err)
        try:
            return rc, json.loads(out)
        except ValueError as e:
            self.fail(" ".join(args), rc, out, "%s; not JSON: %s" % (err, e))


def pending(doc, with_files):
    """What apply would still change, by the plan: live values to set, files to write.

    Limits and systemd settings live in files (limits.d, system.conf.d), so they count only when
    the task writes files: not with confirm (files come at confirm) nor with no_persist.
    """
    lines = []
    for row in doc.get("sysctl") or []:
        if row.get("action") == "set":
            lines.append("sysctl %s: %s -> %s" % (row.get("key"), row.get("live"), row.get("wanted")))
    if not with_files:
        return lines
    for row in doc.get("limits") or []:
        if row.get("action") == "set":
            lines.append(
                "limit %s %s %s: %s -> %s"
                % (row.get("domain"), row.get("type"), row.get("item"), row.get("live"), row.get("wanted"))
            )
    for row in doc.get("systemd") or []:
        if row.get("action") == "set":
            lines.append("systemd %s: %s -> %s" % (row.get("setting"), row.get("live"), row.get("wanted")))
    for f in doc.get("files") or []:
        if f.get("old") != f.get("new"):
            verb = "create" if f.get("old") is None else ("remove" if f.get("new") is None else "modify")
            lines.append("file %s: %s" % (f.get("path"), verb))
    return lines


def plan_diff(doc, with_files):
    """Ansible diff-mode entries: live values as key = value lines, then each file."""
    before, after = [], []
    for row in doc.get("sysctl") or []:
        if row.get("action") == "set":
            before.append("%s = %s\n" % (row.get("key"), row.get("live")))
            after.append("%s = %s\n" % (row.get("key"), row.get("wanted")))
    entries = []
    if before:
        entries.append(
            {
                "before_header": "live sysctl (%s)" % (doc.get("profile") or {}).get("name"),
                "after_header": "live sysctl after apply",
                "before": "".join(before),
                "after": "".join(after),
            }
        )
    if with_files:
        for f in doc.get("files") or []:
            if f.get("old") != f.get("new"):
                entries.append(
                    {
                        "before_header": f.get("path") if f.get("old") is not None else "/dev/null",
                        "after_header": f.get("path") if f.get("new") is not None else "/dev/null",
                        "before": f.get("old") or "",
                        "after": f.get("new") or "",
                    }
                )
    return entries


def applied(module, np, result, profile):
    # Files are written only at confirm with --confirm, and never with --no-persist.
    with_files = not module.params["no_persist"] and not module.params["confirm"]
    # diff exits 0 in sync, 1 differs, 2 bad profile (nothing touched).
    diff_rc, before = np.json_rc(["diff", profile], ok=(0, 1))
    result["plan"] = before
    changes = pending(before, with_files)
    changes.extend(running_pending(module, np, profile, diff_rc == 0))
    result["changes"] = changes
    if module._diff:
        result["diff"] = plan_diff(before, with_files)
    if not changes or module.check_mode:
        result["changed"] = bool(changes)
        return result
    args = ["apply", profile]
    if module.params["confirm"]:
        args += ["--confirm", str(module.params["confirm"])]
    if module.params["no_persist"]:
        args.append("--no-persist")
    if module.params["allow_override"]:
        args.append("--allow-override")
    if module.params["verify"]:
        args.append("--verify")
    for pattern in module.params["running"]:
        args += ["--running", pattern]
    rc, out, err = np.run(["--json"] + args)
    result.update(rc=rc, stdout=out, stderr=err)
    if rc != 0:
        # 2: refused, nothing touched; 3: failed and rolled back; 4: rollback failed too.
        np.fail("apply", rc, out, err, changes=changes)
    try:
        doc = json.loads(out)
    except ValueError:
        doc = {}
    if doc.get("generation") is not None:
        result["generation"] = doc["generation"]
    if doc.get("verify"):
        result["verify"] = doc["verify"]
    after = np.json(["diff", profile], ok=(0, 1))
    left = pending(after, with_files)
    if left:
        module.fail_json(
            msg="netprofile apply exited 0 but the plan still differs: %s" % "; ".join(left),
            rc=rc, stdout=out, stderr=err, changes=changes,
        )
    result["changed"] = True
    return result


def running_pending(module, np, profile, in_sync):
    """A line when O(running) would raise a running process's limits although the plan is in sync.

    `apply --dry-run --running` exits 1 when the plan differs or a matching process is below what
    the profile gives it, and 2 (refused, nothing touched) when a pattern matches nothing, so it
    also checks the patterns in check mode. When the plan differs, the apply that follows raises
    the processes anyway.
    """
    patterns = module.params["running"]
    if not patterns:
        return []
    args = ["apply", "--dry-run", profile]
    for pattern in patterns:
        args += ["--running", pattern]
    rc, out, err = np.run(["--quiet"] + args)
    if rc not in (0, 1):
        np.fail(" ".join(args), rc, out, err)
    if rc == 1 and in_sync:
        return ["open-files limits of running %s: raise" % ", ".join(patterns)]
    return []


def rolled_back(module, np, result):
    """Undoes the newest generation in force (of the profile, when given), as `rollback N`.

    "In force" is netprofile's own rule (`status --json`), so a confirmed apply (its `confirm`
    generation stands for the apply it kept) counts; an `apply --pending` generation is undone
    with the apply before it, as a plain `netprofile rollback` does.
    """
    status = np.json(["status"], ok=(0, 1))
    in_force = status.get("in_force") or []
    history = np.json(["history"])
    by_number = dict((g.get("generation"), g) for g in history.get("generations") or [])
    profile = module.params["profile"]
    target = None
    for number in reversed(in_force):
        g = by_number.get(number) or {}
        # A `confirm` generation stands for the apply it kept.
        owner = by_number.get(g.get("confirms")) if g.get("confirms") is not None else g
        if owner is None:
            continue
        # As a plain `netprofile rollback` does: an `apply --pending` generation (what the boot
        # unit did) belongs to the apply before it and is undone with it, never alone.
        if owner.get("op") == "apply-pending":
            continue
        if profile and not _same_profile(owner.get("profile") or {}, profile):
            continue
        target = owner
        break
    if target is None:
        result["changed"] = False
        if profile:
            result["msg"] = "nothing to roll back: no generation of %s is in force" % profile
        else:
            result["msg"] = "nothing to roll back: no generation is in force"
        return result
    number = target.get("generation")
    undone = []
    for n in in_force:
        if n >= number:
            undone.extend((by_number.get(n) or {}).get("changes") or [])
    later = [n for n in in_force if n > number and (by_number.get(n) or {}).get("confirms") != number]
    if later:
        module.warn("rolling back generation %s also undoes the later generations %s" % (number, later))
    result["rolled_back"] = number
    result["changes"] = ["%s %s: restore" % (c.get("kind"), c.get("key") or c.get("path")) for c in undone]
    if module._diff:
        result["diff"] = rollback_diff(number, undone)
    result["changed"] = True
    if module.check_mode:
        return result
    rc, out, err = np.run(["--json", "rollback", str(number)])
    result.update(rc=rc, stdout=out, stderr=err)
    if rc != 0:
        np.fail("rollback", rc, out, err, changes=result["changes"])
    try:
        doc = json.loads(out)
    except ValueError:
        doc = {}
    if doc.get("generation") is not None:
        result["generation"] = doc["generation"]
    return result


def rollback_diff(number, undone):
    """Diff-mode entries for a rollback: live values back, then each file back."""
    sysctl = [c for c in undone if c.get("kind") == "sysctl"]
    entries = []
    if sysctl:
        entries.append(
            {
                "before_header": "live sysctl (generation %s)" % number,
                "after_header": "live sysctl after rollback",
                "before": "".join("%s = %s\n" % (c.get("key"), c.get("after")) for c in sysctl),
                "after": "".join("%s = %s\n" % (c.get("key"), c.get("before")) for c in sysctl),
            }
        )
    for c in undone:
        if c.get("kind") == "file":
            path = "/" + str(c.get("path")).lstrip("/")
            entries.append(
                {
                    "before_header": path if c.get("after") is not None else "/dev/null",
                    "after_header": path if c.get("before") is not None else "/dev/null",
                    "before": c.get("after") or "",
                    "after": c.get("before") or "",
                }
            )
    return entries


def _same_profile(recorded, profile):
    """A generation's profile matches a shipped name or a file path as the task gives it."""
    return profile in (recorded.get("name"), recorded.get("source"), "shipped:" + str(recorded.get("name")))


def confirmed(module, np, result):
    status = np.json(["status"], ok=(0, 1))
    if not status.get("pending"):
        result["changed"] = False
        return result
    result["changed"] = True
    result["changes"] = ["confirm pending apply"]
    if module.check_mode:
        return result
    rc, out, err = np.run(["confirm"])
    result.update(rc=rc, stdout=out, stderr=err)
    if rc != 0:
        np.fail("confirm", rc, out, err)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            profile=dict(type="str"),
            content=dict(type="str"),
            state=dict(type="str", default="applied", choices=["applied", "rolled_back", "confirmed"]),
            confirm=dict(type="int"),
            allow_override=dict(type="bool", default=False),
            verify=dict(type="bool", default=False),
            running=dict(type="list", elements="str", default=[]),
            no_persist=dict(type="bool", default=False),
            root=dict(type="path", default="/"),
            binary=dict(type="str", default="netprofile"),
        ),
        mutually_exclusive=[("profile", "content")],
        required_if=[("state", "applied", ("profile", "content"), True)],
        supports_check_mode=True,
    )
    confirm = module.params["confirm"]
    if confirm is not None and not 1 <= confirm <= 86400:
        module.fail_json(msg="confirm must be a number of seconds from 1 to 86400 (24 h)")
    if module.params["state"] != "applied":
        for option in ("content", "confirm"):
            if module.params[option] is not None:
                module.fail_json(msg="%s is only for state=applied" % option)
    np = Netprofile(module)
    result = dict(changed=False, changes=[], rc=0, stdout="", stderr="")
    state = module.params["state"]
    if state == "applied":
        if module.params["content"] is not None:
            with_content(module, np, result)
        else:
            applied(module, np, result, module.params["profile"])
    elif state == "rolled_back":
        rolled_back(module, np, result)
    else:
        confirmed(module, np, result)
    module.exit_json(**result)


def with_content(module, np, result):
    """Applies inline TOML through a private temporary file that is removed afterwards."""
    fd, path = tempfile.mkstemp(prefix="netprofile-", suffix=".toml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(module.params["content"])
        applied(module, np, result, path)
    finally:
        os.unlink(path)
    # The temporary name means nothing to the operator; the profile's own name is in the plan.
    if isinstance(result.get("plan"), dict) and isinstance(result["plan"].get("profile"), dict):
        result["plan"]["profile"]["source"] = "content"


if __name__ == "__main__":
    main()
