#!/usr/bin/env python3
"""Checks netprofile-daemonset.yaml the way a reviewer would, without a cluster: it parses, the
DaemonSet runs in the node's network namespace, privileged, with the node's / at /host and the
ConfigMap's profile mounted where the command reads it; and the profile itself is written out
for `netprofile render` to check (the caller runs it). Usage: check.py YAML OUT_PROFILE."""

import os
import re
import sys

import yaml


def fail(msg):
    sys.exit("check.py: " + msg)


def main():
    path, out = sys.argv[1], sys.argv[2]
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {d["kind"]: d for d in docs}
    for kind in ("Namespace", "ConfigMap", "DaemonSet", "ServiceAccount", "Role", "RoleBinding"):
        if kind not in by_kind:
            fail("no %s in %s" % (kind, path))
    cm, ds = by_kind["ConfigMap"], by_kind["DaemonSet"]
    if ds["spec"]["selector"]["matchLabels"] != ds["spec"]["template"]["metadata"]["labels"]:
        fail("the DaemonSet's selector does not match its pod labels")
    pod = ds["spec"]["template"]["spec"]
    if pod.get("hostNetwork") is not True:
        fail("the pod must use the host network (per-namespace keys)")
    (c,) = pod["containers"]
    if c.get("securityContext", {}).get("privileged") is not True:
        fail("the container must be privileged (/proc/sys is read-only otherwise)")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    if volumes["host"]["hostPath"]["path"] != "/" or mounts["host"]["mountPath"] != "/host":
        fail("the node's / must be mounted at /host")
    if volumes["profile"]["configMap"]["name"] != cm["metadata"]["name"]:
        fail("the profile volume does not name the ConfigMap")
    if cm["metadata"]["namespace"] != ds["metadata"]["namespace"]:
        fail("the ConfigMap and the DaemonSet are in different namespaces")
    script = " ".join(c["command"])
    wanted = mounts["profile"]["mountPath"] + "/profile.toml"
    if "--root /host" not in script or wanted not in script:
        fail("the command must run netprofile --root /host on " + wanted)
    labels = by_kind["Namespace"]["metadata"].get("labels") or {}
    if labels.get("pod-security.kubernetes.io/enforce") != "privileged":
        fail("the namespace needs pod-security.kubernetes.io/enforce: privileged (the pod is privileged)")
    if not re.search(r"@sha256:[0-9a-f]{64}$", c["image"]):
        fail("the image is not pinned by digest: " + c["image"])
    rules = by_kind["Role"]["rules"]
    if rules != [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]:
        fail("the Role grants more than creating events: %r" % rules)
    if pod.get("serviceAccountName") != by_kind["ServiceAccount"]["metadata"]["name"]:
        fail("the pod does not run as the ServiceAccount the RoleBinding names")
    if "check" not in " ".join(c["readinessProbe"]["exec"]["command"]):
        fail("the readiness probe must be netprofile check")
    # Every file a comment points at exists (beside this file or in the repository).
    here = os.path.dirname(os.path.abspath(path))
    repo = os.path.dirname(os.path.dirname(here))
    with open(path) as f:
        comments = " ".join(line.split("#", 1)[1] for line in f if line.lstrip().startswith("#"))
    for ref in set(re.findall(r"[\w./-]+\.md|Dockerfile", comments)):
        if not any(os.path.exists(os.path.join(d, ref)) for d in (here, repo)):
            fail("a comment points at %s, which does not exist" % ref)
    if "profile.toml" not in cm["data"]:
        fail("the ConfigMap has no profile.toml")
    with open(out, "w") as f:
        f.write(cm["data"]["profile.toml"])
    print("kubernetes: %s: %d documents, DaemonSet checked" % (path, len(docs)))


main()
