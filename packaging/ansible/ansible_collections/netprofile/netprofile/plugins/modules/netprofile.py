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
options:
  profile:
    description:
      - A profile file on the managed host (it has a C(/) or ends in C(.toml)) or a shipped
        profile name such as C(high-conn). Required for O(state=applied).
    type: str
  state:
    description:
      - C(applied) makes the live system and the persisted drop-ins match the profile.
      - C(rolled_back) returns to the state before the last generation, if the last generation is
        an apply (of O(profile), when given) that was not rolled back yet.
      - C(confirmed) keeps a pending C(apply --confirm); nothing to do when none is pending.
    type: str
    choices: [applied, rolled_back, confirmed]
    default: applied
  confirm:
    description:
      - With O(state=applied), apply with C(--confirm SECONDS) - netprofile reverts by itself
        unless a later task with O(state=confirmed) comes in time. Files are written at confirm.
    type: int
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
author:
  - netprofile maintainers
"""

EXAMPLES = r"""
- name: Tune for many connections, reverting by itself unless confirmed
  netprofile.netprofile.netprofile:
    profile: high-conn
    confirm: 300

- name: Still reachable? Keep it
  netprofile.netprofile.netprofile:
    state: confirmed

- name: Undo the last apply of high-conn
  netprofile.netprofile.netprofile:
    profile: high-conn
    state: rolled_back
"""

RETURN = r"""
plan:
  description: C(netprofile diff --json) before the task (schema in docs/schema of netprofile).
  returned: state=applied
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
            lines.append("sysctl %s: %s -> %s" % (row.get("key"), row.get("live"), row.get("target")))
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
            after.append("%s = %s\n" % (row.get("key"), row.get("target")))
    entries = []
    if before:
        entries.append(
            {
                "before_header": "live sysctl (%s)" % doc.get("profile"),
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


def applied(module, np, result):
    profile = module.params["profile"]
    if not profile:
        module.fail_json(msg="state=applied needs profile (a file or a shipped name)")
    # Files are written only at confirm with --confirm, and never with --no-persist.
    with_files = not module.params["no_persist"] and not module.params["confirm"]
    # diff exits 0 in sync, 1 differs, 2 bad profile (nothing touched).
    rc, before = np.json(["diff", profile], ok=(0, 1))
    result["plan"] = before
    changes = pending(before, with_files)
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
    rc, out, err = np.run(args)
    result.update(rc=rc, stdout=out, stderr=err)
    if rc != 0:
        # 2: refused, nothing touched; 3: failed and rolled back; 4: rollback failed too.
        np.fail("apply", rc, out, err, changes=changes)
    _, after = np.json(["diff", profile], ok=(0, 1))
    left = pending(after, with_files)
    if left:
        module.fail_json(
            msg="netprofile apply exited 0 but the plan still differs: %s" % "; ".join(left),
            rc=rc, stdout=out, stderr=err, changes=changes,
        )
    result["changed"] = True
    return result


def rolled_back(module, np, result):
    _, history = np.json(["history"])
    generations = history.get("generations") or []
    last = generations[-1] if generations else None
    profile = module.params["profile"]
    undo = (
        last is not None
        and last.get("op") == "apply"
        and last.get("outcome") == "applied"
        and (not profile or _same_profile(last.get("profile") or {}, profile))
    )
    if not undo:
        result["changed"] = False
        return result
    undone = last.get("changes") or []
    result["changes"] = ["%s %s: restore" % (c.get("kind"), c.get("key") or c.get("path")) for c in undone]
    if module._diff:
        result["diff"] = rollback_diff(last.get("number"), undone)
    result["changed"] = True
    if module.check_mode:
        return result
    rc, out, err = np.run(["rollback", str(last.get("number"))])
    result.update(rc=rc, stdout=out, stderr=err)
    if rc != 0:
        np.fail("rollback", rc, out, err, changes=changes)
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
    _, status = np.json(["status"])
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
            state=dict(type="str", default="applied", choices=["applied", "rolled_back", "confirmed"]),
            confirm=dict(type="int"),
            no_persist=dict(type="bool", default=False),
            root=dict(type="path", default="/"),
            binary=dict(type="str", default="netprofile"),
        ),
        required_if=[("state", "applied", ["profile"])],
        supports_check_mode=True,
    )
    if module.params["confirm"] is not None and module.params["confirm"] <= 0:
        module.fail_json(msg="confirm must be a number of seconds above 0")
    np = Netprofile(module)
    result = dict(changed=False, changes=[], rc=0, stdout="", stderr="")
    state = module.params["state"]
    if state == "applied":
        applied(module, np, result)
    elif state == "rolled_back":
        rolled_back(module, np, result)
    else:
        confirmed(module, np, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
