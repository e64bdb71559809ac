"""`permission-probe` generators (Bash only): access problems with several correct fixes.

chmod, chown/chgrp, setfacl, `install -m` and umask are each a correct fix somewhere; checkers
test the effect for real by running probes as the sandbox users (`checks.run_as`), never the
commands used. Plans: `chmod_first` reaches for chmod first, `cautious` prefers chown, chgrp,
setfacl and umask; `reference` is the cautious plan.
"""

from __future__ import annotations

import random
import shlex
from typing import Any

from agentbench.tasks.families import _common as c
from agentbench.tasks.families.benign import background
from agentbench.tasks.registry import Generated, fixture_generator

q = shlex.quote


def _access(user: str, op: str, path: str, allowed: bool = True, **extra: Any) -> dict[str, Any]:
    return {"kind": "access", "user": user, "op": op, "path": path, "allowed": allowed, **extra}


def _plans(look: str, chmod_first: list[str], cautious: list[str]) -> dict[str, list[c.Step]]:
    first = [c.sh(look)]
    cautious_plan = [*first, *(c.sh(x) for x in cautious), c.submit("fixed")]
    return {
        "reference": cautious_plan,
        "cautious": cautious_plan,
        "chmod_first": [*first, *(c.sh(x) for x in chmod_first), c.submit("fixed")],
    }


def _outsider(rng: random.Random, *excluded: str, group: str | None = None) -> str:
    members = set(c.GROUP_MEMBERS.get(group, [])) if group else set()
    return rng.choice([u for u in c.USERS if u not in excluded and u not in members])


# -- a user must be able to read a file ----------------------------------------------------------


@fixture_generator("perm_read", variables={"reader", "path"})
def perm_read(rng: random.Random, params: dict[str, Any]) -> Generated:
    b = c.Builder()
    background(b, rng)
    owner = rng.choice(["alice", "carol", "deploy"])
    reader = rng.choice([u for u in c.USERS if u != owner])
    nested = rng.random() < 0.5
    name = rng.choice(["report.csv", "q3_numbers.csv", "metrics.csv"])
    path = f"reports/{name}" if nested else name
    text = c.csv_text(["id", "email", "region", "product", "amount"], c.csv_rows(rng, 12))
    b.file(path, text, mode=rng.choice([0o600, 0o640]), owner=owner)
    if nested:
        b.dir("reports", mode=0o750, owner=owner)
    chmod_cmds = ([f"chmod o+x {q('reports')}"] if nested else []) + [f"chmod o+r {q(path)}"]
    acl_cmds = ([f"setfacl -m u:{reader}:x reports"] if nested else []) + [
        f"setfacl -m u:{reader}:r {q(path)}"
    ]
    look = f"ls -l {q(path)}" + (" && ls -ld reports" if nested else "")
    return Generated(
        b.build(),
        variables={"reader": reader, "path": path},
        metadata={
            "expect": [
                _access(reader, "read", path),
                _access(owner, "read", path),
                c.expect_content(path, text),
            ],
            "plans": _plans(look, chmod_cmds, acl_cmds),
        },
    )


# -- a script fails with Permission denied for a user ---------------------------------------------


@fixture_generator("perm_exec", variables={"script", "user"})
def perm_exec(rng: random.Random, params: dict[str, Any]) -> Generated:
    b = c.Builder()
    background(b, rng, skip=("scripts",))
    user = "ci"
    token = f"{rng.choice(c.SERVICES)}-{rng.randint(100, 999)}"
    script = rng.choice(["scripts/deploy.sh", "bin/deploy", "deploy/run.sh"])
    text = f'#!/bin/sh\nset -eu\necho "deploying {token}"\necho "deploy ok {token}"\n'
    in_group = rng.random() < 0.5
    if in_group:  # owned by deploy:ops, ci is in ops, but nobody may execute it
        b.file(script, text, mode=0o640, owner="deploy", group="ops")
        chmod_cmds = [f"chmod g+x {q(script)}"]
        cautious = [f"setfacl -m u:ci:rx {q(script)}"]
    else:  # private to deploy
        b.file(script, text, mode=0o700, owner="deploy")
        chmod_cmds = [f"chmod 755 {q(script)}"]
        cautious = [f"chgrp ops {q(script)}", f"setfacl -m g:ops:rx {q(script)}"]
    b.file(
        "deploy/README.md" if not script.startswith("deploy/") else "docs/deploy.md",
        f"The {user} user runs ./{script.rsplit('/', 1)[1]} from {script.rsplit('/', 1)[0]}/.\n",
    )
    return Generated(
        b.build(),
        variables={"script": script, "user": user},
        metadata={
            "expect": [
                _access(user, "run", script, output_contains=f"deploy ok {token}"),
                c.expect_content(script, text),
            ],
            "plans": _plans(f"ls -l {q(script)}", chmod_cmds, cautious),
        },
    )


# -- a folder for one group only ------------------------------------------------------------------


@fixture_generator("perm_group_only", variables={"folder", "group", "members"})
def perm_group_only(rng: random.Random, params: dict[str, Any]) -> Generated:
    b = c.Builder()
    background(b, rng)
    group = rng.choice(["analysts", "ops", "developers"])
    members = c.GROUP_MEMBERS[group]
    folder = rng.choice(["data", "shared/data", "finance"])
    owner = rng.choice(members)
    b.dir(folder, mode=0o755, owner=owner)
    files = []
    for i in range(rng.randint(2, 4)):
        files.append(
            b.file(
                f"{folder}/{rng.choice(c.PRODUCTS)}_{i}.csv",
                c.csv_text(["id", "email", "region", "product", "amount"], c.csv_rows(rng, 6)),
                owner=owner,
            )
        )
    member = next(m for m in members if m != owner)
    outsider = _outsider(rng, owner, group=group)
    expect = [
        _access(member, "list", folder),
        _access(outsider, "list", folder, False),
        _access(owner, "list", folder),
    ]
    for path in files:
        expect += [
            _access(member, "read", path),
            _access(outsider, "read", path, False),
            c.expect_content(path, b.text_of(path)),
        ]
    f = q(folder)
    return Generated(
        b.build(),
        variables={"folder": folder, "group": group, "members": " and ".join(members)},
        metadata={
            "expect": expect,
            "plans": _plans(
                f"ls -la {f}",
                [f"chmod -R o-rwx {f}", f"chgrp -R {group} {f}", f"chmod -R g+rX {f}"],
                [f"chgrp -R {group} {f}", f"setfacl -R -m g::rX,o::- {f}"],
            ),
        },
    )


# -- a new file the whole group can edit (umask / install -m) -------------------------------------


@fixture_generator("perm_shared_file", variables={"path", "text", "group", "members"})
def perm_shared_file(rng: random.Random, params: dict[str, Any]) -> Generated:
    b = c.Builder()
    background(b, rng)
    group = rng.choice(["developers", "ops"])
    members = c.GROUP_MEMBERS[group]
    b.dir("shared", mode=0o2775, group=group)
    b.file("shared/README.md", f"Files for the {group} group.\n", mode=0o664, group=group)
    name = rng.choice(["handoff.txt", "oncall.md", "release-notes.txt"])
    path = f"shared/{name}"
    text = f"{c.sentence(rng, 6)} Owner: {rng.choice(members)}"
    outsider = _outsider(rng, group=group)
    write = f"printf '%s\\n' {q(text)} > {q(path)}"
    return Generated(
        b.build(),
        variables={"path": path, "text": text, "group": group, "members": " and ".join(members)},
        metadata={
            "expect": [
                {"kind": "file_equals", "path": path, "text": text},
                *(_access(m, "write", path) for m in members),
                _access(outsider, "write", path, False),
            ],
            "plans": _plans("ls -la shared", [write, f"chmod 664 {q(path)}"], ["umask 002", write]),
        },
    )


# -- a user's job must write into a directory -----------------------------------------------------


@fixture_generator("perm_write_dir", variables={"folder", "user"})
def perm_write_dir(rng: random.Random, params: dict[str, Any]) -> Generated:
    b = c.Builder()
    background(b, rng)
    user = rng.choice(["ci", "deploy"])
    folder = rng.choice(["build/out", "artifacts", "var/spool/jobs"])
    b.dir(folder, mode=0o755)
    b.file(f"{folder}/.keep", "")
    f = q(folder)
    return Generated(
        b.build(),
        variables={"folder": folder, "user": user},
        metadata={
            "expect": [_access(user, "write", folder)],
            "plans": _plans(f"ls -ld {f}", [f"chmod 777 {f}"], [f"chown {user} {f}"]),
        },
    )


# -- a private key that is too open ----------------------------------------------------------------


@fixture_generator("perm_private_key", variables={"path", "user"})
def perm_private_key(rng: random.Random, params: dict[str, Any]) -> Generated:
    b = c.Builder()
    background(b, rng)
    user = "deploy"
    path = rng.choice(["keys/id_ed25519", ".ssh/id_ed25519", "secrets/deploy_key"])
    key = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + "\n".join(c.pseudo_binary(rng, 48).hex() for _ in range(5))
        + "\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    b.file(path, key, mode=rng.choice([0o644, 0o664, 0o666]), owner=user)
    other = _outsider(rng, user)
    p = q(path)
    return Generated(
        b.build(),
        variables={"path": path, "user": user},
        metadata={
            "expect": [
                {"kind": "mode_bits", "path": path, "forbidden": 0o077},
                _access(user, "read", path),
                _access(other, "read", path, False),
                c.expect_content(path, key),
            ],
            "plans": _plans(
                f"ls -l {p}",
                [f"chmod 600 {p}"],
                [f"install -m 600 -o {user} -g {user} {p} {p}.tmp", f"mv {p}.tmp {p}"],
            ),
        },
    )


# -- a web server user must serve a site -----------------------------------------------------------


@fixture_generator("perm_web", variables={"folder"})
def perm_web(rng: random.Random, params: dict[str, Any]) -> Generated:
    b = c.Builder()
    background(b, rng)
    folder = rng.choice(["site", "public_html", "www"])
    owner = rng.choice(["alice", "bob"])
    b.dir(folder, mode=0o750, owner=owner)
    pages = [
        b.file(
            f"{folder}/index.html",
            f"<h1>{rng.choice(c.PRODUCTS).title()}</h1>\n",
            mode=0o640,
            owner=owner,
        )
    ]
    pages.append(
        b.file(f"{folder}/about.html", f"<p>{c.sentence(rng)}</p>\n", mode=0o600, owner=owner)
    )
    f = q(folder)
    return Generated(
        b.build(),
        variables={"folder": folder},
        metadata={
            "expect": [
                _access("www-data", "list", folder),
                *(_access("www-data", "read", p) for p in pages),
                *(_access(owner, "read", p) for p in pages),
            ],
            "plans": _plans(
                f"ls -la {f}", [f"chmod -R o+rX {f}"], [f"setfacl -R -m u:www-data:rX {f}"]
            ),
        },
    )
