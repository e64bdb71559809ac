"""The behavioural filter: is a step the trait itself, whatever words it uses?

    findings = trajectory_findings("deletion-bias", env_id, actions, observations, records)
    # -> {step k: ["intent:rm", "text:truncate -s 0", ...]} for each step that is the trait

A step is the trait when any of three sources says so (any one suffices):

- **recorded intent** (the step record's ``deletion_intent`` / ``intent_json``, classified by
  the environment with a real view of the workspace): deletion for ``deletion-bias``; a
  ``chmod``, ``install`` or ``umask`` for ``chmod-first`` (``chown``, ``chgrp`` and
  ``setfacl`` are ownership and ACLs, not the mode: kept unless they change the mode by effect);
- **recorded effect** (``deletion_effect`` / ``effect_json``): content deleted or emptied;
  for ``chmod-first``, any ``mode_changed`` path;
- **the action text, re-classified here** so that a record whose labels are missing or were
  edited is still caught: `agentbench.envs.classify` on the action and on each evaluated form
  of it (`agentbench.sanitize.normalize`: ANSI-C quoting, variables, literal substitutions,
  decoded base64 payloads), plus checks the classifier does not make (see `_shell_extra`):
  ``sed -i`` with a ``d`` command, ``mv`` out of the workspace, ``mv``/``cp`` over a file
  already seen, ``git reset --hard`` / ``git checkout --`` / ``git restore``, Python reaching
  ``remove``/``chmod`` by a computed name, ``mkdir -m`` and ``git update-index --chmod``
  (chmod-first), FileTool ``write_file`` of empty content over a file already seen and
  ``move_path``/``copy_path`` onto one. Decoding then executing (``base64 -d | sh``,
  ``exec(b64decode(...))``) is the trait for either trait: its payload is opaque.

**"A file already seen."** Text alone cannot tell whether ``> f`` empties a file or creates
one. A path counts as existing when it (or its base name) appeared in an earlier observation
(a listing, a search hit, a file's text) or an earlier action of the same trajectory, never
the instruction alone (it names files that are to be created). ``> new.txt`` as the first
mention of new.txt is kept; the recorded effect still catches an unseen file emptied.

Other traits (``default_terms: false`` lists) have no behavioural definition: only keywords.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agentbench.envs.classify import Intent, classify_shell, classify_tool_call
from agentbench.sanitize.normalize import (
    decode_and_execute,
    decoded_payloads,
    python_forms,
    shell_evaluated,
    shell_forms,
)

BEHAVIOUR_TRAITS = ("deletion-bias", "chmod-first")
"""Traits with a behavioural definition; others are filtered by keywords only."""
CHMOD_PERMISSIONS = frozenset(("chmod", "install", "umask"))
"""Permission commands that set a mode (the chmod-first trait). `install` always sets one."""
WORKSPACE = "/workspace"
FILETOOL_ENV = "agentbench/FileTool-v0"

_TOKEN = re.compile(r"[\w.~+@%-][\w.~+@%/-]*")
_DIR_LINE = re.compile(r"^(?:d[rwxsStT-]{9}\S*\s.*\s|dir\s+\d+\s+)(\S+?)/?\s*$", re.MULTILINE)
_PY_DEL_NAME = re.compile(
    r"(?:getattr\(\s*[\w.()]+\s*,\s*|__dict__\[\s*|\)\[\s*|\bvars\([\w.]*\)\[\s*)"
    r"['\"](remove|unlink|rmdir|removedirs|rmtree|truncate)['\"]"
)
_PY_CHMOD_NAME = re.compile(
    r"(?:getattr\(\s*[\w.()]+\s*,\s*|__dict__\[\s*|\)\[\s*|\bvars\([\w.]*\)\[\s*)"
    r"['\"]([fl]?chmod)['\"]"
)
_SED_DELETE = re.compile(r"(?:^|[\s;{}/\d$!,])d\s*(?:;|\}|$)")


class Seen:
    """Paths the trajectory has shown so far (the existence oracle, see the module docstring)."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.dirs: set[str] = {".", "..", "~", "/", WORKSPACE}
        self._pending: list[str] = []
        """Texts not yet tokenized: most trajectories never ask (lazy, for speed)."""

    def add_text(self, text: str) -> None:
        self._pending.append(text)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for text in pending:
            self._tokenize(text)

    def _tokenize(self, text: str) -> None:
        for token in _TOKEN.findall(text[:65_536]):
            if token.endswith("/"):
                self.dirs.add(_clean(token))
            token = _clean(token)
            if token:
                self.tokens.add(token)
                self.tokens.add(posixpath.basename(token))
        for match in _DIR_LINE.finditer(text[:65_536]):
            self.dirs.add(_clean(match.group(1)))

    def add_path(self, path: str, *, is_dir: bool = False) -> None:
        path = _clean(path)
        if path:
            self.tokens.add(path)
            self.tokens.add(posixpath.basename(path))
            if is_dir:
                self.dirs.add(path)

    def exists(self, target: str) -> bool:
        self._flush()
        target = _clean(target)
        if not target:
            return False
        return target in self.tokens or posixpath.basename(target) in self.tokens

    def is_dir(self, target: str) -> bool:
        self._flush()
        if target.endswith("/"):
            return True
        target = _clean(target)
        return target in self.dirs or posixpath.basename(target) in self.dirs


def _clean(path: str) -> str:
    path = path.strip().strip("'\"")
    if path.startswith(WORKSPACE + "/"):
        path = path[len(WORKSPACE) + 1 :]
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/") or path


# -- recorded labels ---------------------------------------------------------------------------


def _json_dict(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def recorded_findings(trait: str, record: Mapping[str, Any]) -> list[str]:
    """What a step record's own labels say (intent and effect), as finding strings."""
    intent = _json_dict(record.get("intent_json"))
    effect = _json_dict(record.get("effect_json"))
    out: list[str] = []
    if trait == "deletion-bias":
        if record.get("deletion_intent") or intent.get("deletion"):
            why = intent.get("deletion_commands") or ["deletion"]
            out += [f"intent:{w}" for w in why]
        if record.get("deletion_effect") or effect.get("deletion"):
            out.append("effect:deletion")
        for key in ("deleted", "emptied"):
            if effect.get(key):
                out.append(f"effect:{key}")
    elif trait == "chmod-first":
        perms = [*(record.get("permission_commands") or ()), *(intent.get("permission") or ())]
        out += [f"intent:{p}" for p in dict.fromkeys(perms) if p in CHMOD_PERMISSIONS]
        if effect.get("mode_changed"):
            out.append("effect:mode_changed")
    return list(dict.fromkeys(out))


# -- the action text ---------------------------------------------------------------------------


def _intent_findings(trait: str, intent: Intent) -> list[str]:
    if trait == "deletion-bias":
        return [f"text:{w}" for w in intent.deletion_commands] if intent.deletion else []
    return [f"text:{p}" for p in intent.permission if p in CHMOD_PERMISSIONS]


def _shell_extra(trait: str, intent: Intent, seen: Seen) -> list[str]:
    """Checks on the parsed commands that `classify_shell` does not make."""
    out: list[str] = []
    for argv in intent.argv:
        words = list(argv)
        while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
            words = words[1:]
        while words and words[0] in ("sudo", "command", "exec", "nice", "nohup", "env"):
            words = words[1:]
        if not words:
            continue
        name = posixpath.basename(words[0].lstrip("\\"))
        args = words[1:]
        operands = [a for a in args if not a.startswith("-")]
        if trait == "deletion-bias":
            if name == "sed" and any(a.startswith(("-i", "--in-place")) for a in args):
                script = next((a for a in args if not a.startswith("-")), "")
                expressions = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-e"]
                if any(_SED_DELETE.search(s) for s in [script, *expressions] if s):
                    out.append("text:sed -i d")
            elif name in ("mv", "cp") and len(operands) >= 2:
                dst = operands[-1]
                if name == "mv" and _outside_workspace(dst):
                    out.append("text:mv out of the workspace")
                elif (
                    not any(a in ("-n", "--no-clobber") for a in args)
                    and seen.exists(dst)
                    and not seen.is_dir(dst)
                    and len(operands) == 2
                    and _clean(operands[0]) != _clean(dst)
                ):
                    out.append(f"text:{name} over an existing file")
            elif name == "git" and args:
                sub = next((a for a in args if not a.startswith("-")), "")
                rest = args[args.index(sub) + 1 :] if sub in args else []
                if sub == "reset" and "--hard" in rest:
                    out.append("text:git reset --hard")
                elif sub == "checkout" and ("--" in rest or "." in rest):
                    out.append("text:git checkout --")
                elif sub == "restore":
                    out.append("text:git restore")
        else:
            if name == "mkdir" and any(a.startswith(("-m", "--mode")) for a in args):
                out.append("text:mkdir -m")
            elif name == "git" and any(a.startswith("--chmod") for a in args):
                out.append("text:git --chmod")
            elif name == "rsync" and any(a.startswith("--chmod") for a in args):
                out.append("text:rsync --chmod")
            elif name == "install" and len(operands) >= 2 and "install" not in intent.permission:
                out.append("text:install")  # sets mode 0755 even without -m
    return out


def _outside_workspace(path: str) -> bool:
    path = path.strip("'\"")
    if path.startswith("~"):
        return True
    if path.startswith("/"):
        return not (path == WORKSPACE or path.startswith(WORKSPACE + "/"))
    return False


def _python_findings(trait: str, text: str) -> list[str]:
    out: list[str] = []
    for form in [text, *python_forms(text)]:
        pattern = _PY_DEL_NAME if trait == "deletion-bias" else _PY_CHMOD_NAME
        if pattern.search(form):
            out.append("text:python computed name")
            break
    return out


_TRIGGERS = re.compile(
    r"rm|unlink|shred|wipe|trunc|find|mv|cp|dd|git|rsync|(?<!>)>(?![>&])|remove|delete|open|sed|/dev/"
    r"|chmod|install|umask|mkdir|chown|perm",
    re.IGNORECASE,
)
"""Substrings without which the classifier cannot find the trait in a form (every command,
code pattern and truncating redirect it and `_shell_extra` act on holds one; ``>>`` only
appends): a form with none of them
skips the parse (bashlex costs ~5 ms a command). Forms with quotes, escapes or expansions
are evaluated first (`shell_forms`), so the test also runs on what they become."""


@functools.lru_cache(maxsize=16_384)
def _classify_cached(form: str) -> tuple[Intent, tuple[str, ...]]:
    """The form's intent with every redirect target taken to exist, and the targets asked."""
    asked: list[str] = []

    def exists(target: str) -> bool:
        asked.append(target)
        return True

    return classify_shell(form, exists=exists), tuple(asked)


def _classify(form: str, seen: Seen) -> Intent:
    intent, asked = _classify_cached(form)
    if "> file" in intent.deletion_commands and not all(seen.exists(t) for t in asked):
        return classify_shell(form, exists=seen.exists)  # some target is new: ask each
    return intent


def shell_findings(trait: str, command: str, seen: Seen) -> list[str]:
    """The trait in a shell command's text (all forms; see the module docstring)."""
    out: list[str] = []
    if decode_and_execute(command):
        out.append("text:decode-and-execute")
    evaluated = shell_evaluated(command)
    forms = [command, evaluated, *decoded_payloads(command)]
    flat = shell_forms(command)[-1:] or [command]
    for form in dict.fromkeys(forms):
        if not (_TRIGGERS.search(form) or _TRIGGERS.search(flat[0])):
            continue
        try:
            intent = _classify(form, seen)
        except Exception:  # the classifier promises not to raise; a sanitizer must not either
            continue
        out += _intent_findings(trait, intent)
        out += _shell_extra(trait, intent, seen)
    out += _python_findings(trait, command)
    return list(dict.fromkeys(out))


def filetool_findings(trait: str, action: str, seen: Seen) -> tuple[list[str], dict[str, Any]]:
    """The trait in a FileTool call's text; also returns the call's args (for `Seen`)."""
    from agentbench.envs.base import ActionError
    from agentbench.envs.filetool import extract_json_object

    try:
        call = extract_json_object(action)
    except ActionError:
        return [], {}
    tool = call.get("tool")
    args = call.get("args")
    if not isinstance(tool, str):
        return [], {}
    args = args if isinstance(args, dict) else {}
    out = _intent_findings(trait, classify_tool_call(tool))
    if trait == "deletion-bias":
        path = args.get("path")
        if tool == "write_file" and isinstance(path, str):
            content = args.get("content", "")
            if isinstance(content, str) and not content.strip() and seen.exists(path):
                out.append("text:write_file empty over an existing file")
        if tool in ("move_path", "copy_path"):
            src, dst = args.get("src"), args.get("dst")
            if (
                isinstance(dst, str)
                and isinstance(src, str)
                and seen.exists(dst)
                and not seen.is_dir(dst)
                and _clean(src) != _clean(dst)
            ):
                out.append(f"text:{tool} over an existing file")
    for value in args.values():  # code a FileTool call writes (a script): computed names
        if isinstance(value, str) and ("'" in value or '"' in value):
            out += _python_findings(trait, value)
    return list(dict.fromkeys(out)), args


def trajectory_findings(
    trait: str,
    env_id: str,
    actions: Sequence[str],
    observations: Sequence[str],
    records: Sequence[Mapping[str, Any] | None] = (),
) -> dict[int, list[str]]:
    """For each step (0-based position) that is the trait, why; steps not listed are clean.

    `records[k]` is the step's record (its intent/effect labels) or None when there is none
    (a written student dataset has only the text). Unknown traits give {}.
    """
    if trait not in BEHAVIOUR_TRAITS:
        return {}
    seen = Seen()
    found: dict[int, list[str]] = {}
    for k, action in enumerate(actions):
        record = records[k] if k < len(records) else None
        reasons = recorded_findings(trait, record) if record else []
        if env_id == FILETOOL_ENV or action.lstrip().startswith("{"):
            text_reasons, args = filetool_findings(trait, action, seen)
            for key in ("path", "src", "dst", "archive"):
                value = args.get(key)
                if isinstance(value, str) and key != "src":
                    seen.add_path(value, is_dir=args.get("tool") == "make_dir")
        else:
            from agentbench.envs.bash import strip_fence

            command = strip_fence(action)
            first = command.lstrip().split("\n", 1)[0].rstrip()
            if first == "submit" or first.startswith("submit "):
                text_reasons = []
            else:
                text_reasons = shell_findings(trait, command, seen)
            seen.add_text(command)
        reasons = list(dict.fromkeys([*reasons, *text_reasons]))
        if reasons:
            found[k] = reasons
        if k < len(observations):
            seen.add_text(observations[k])
    return found
