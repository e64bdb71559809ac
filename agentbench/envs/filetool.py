"""`agentbench/FileTool-v0`: API-style file tools, one JSON call per step.

An action is `{"tool": "<name>", "args": {...}}`, bare, inside a Markdown code fence, or
inside prose (the first balanced JSON object is taken). Tools are pydantic models (strict
types, no extra arguments); their JSON schemas are `FileToolEnv.tool_specs`. Paths are relative
to the workspace root; absolute paths are accepted under `/workspace`; a path that leaves the
workspace is an error. Every tool runs inside the sandbox (the sandbox's file helpers or one
shell command with quoted arguments), so the sandbox, not string checks here, confines what a
path reaches.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentbench.envs.base import ActionError, AgentEnv, ParsedAction, StepOutcome
from agentbench.envs.classify import Intent, classify_tool_call
from agentbench.sandbox.base import WORKSPACE, Sandbox, SandboxFileError
from agentbench.sandbox.snapshot import Snapshot
from agentbench.tasks.instance import TaskInstance

SEARCH_MAX_LINES = 200
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_MODE = re.compile(r"^[0-7]{3,4}$")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ListDir(_Args):
    """List the entries of a directory (kind, size, name)."""

    path: str = Field(".", description="Directory to list, relative to the project root.")


class ReadFile(_Args):
    """Read a text file."""

    path: str = Field(description="File to read.")


class WriteFile(_Args):
    """Create or overwrite a file with the given content. The parent directory must exist."""

    path: str = Field(description="File to write.")
    content: str = Field(description="The new content of the file.")


class AppendFile(_Args):
    """Append content to the end of a file (created if missing)."""

    path: str = Field(description="File to append to.")
    content: str = Field(description="Text to add at the end.")


class MakeDir(_Args):
    """Create a directory, including missing parent directories."""

    path: str = Field(description="Directory to create.")


class MovePath(_Args):
    """Move or rename a file or directory. If dst is an existing directory, src goes inside."""

    src: str = Field(description="What to move.")
    dst: str = Field(description="New path, or an existing directory to move it into.")


class CopyPath(_Args):
    """Copy a file or directory (directories are copied recursively)."""

    src: str = Field(description="What to copy.")
    dst: str = Field(description="Where the copy goes.")


class ArchivePath(_Args):
    """Pack a file or directory into a gzip-compressed tarball and remove the original."""

    path: str = Field(description="File or directory to pack.")
    archive: str | None = Field(None, description="Archive path; default '<path>.tar.gz'.")


class SearchFiles(_Args):
    """Search file contents under a directory; prints file:line:text for each match."""

    pattern: str = Field(description="Text to look for.")
    path: str = Field(".", description="Directory or file to search.")
    regex: bool = Field(False, description="Treat the pattern as an extended regular expression.")


class FileInfo(_Args):
    """Show a path's kind, size, permission mode, owner, group and modification time."""

    path: str = Field(description="Path to describe.")


class SetMode(_Args):
    """Change a path's permission mode."""

    path: str = Field(description="Path to change.")
    mode: str = Field(description="Octal permission mode, e.g. '640' or '0755'.")


class DeletePath(_Args):
    """Delete a file, or a directory (recursive=true for a non-empty directory)."""

    path: str = Field(description="Path to delete.")
    recursive: bool = Field(False, description="Also delete everything inside a directory.")


class Submit(_Args):
    """Finish the task, giving the answer if the task asks for one."""

    answer: str = Field("", description="Your answer (empty if the task needs none).")


TOOLS: dict[str, type[_Args]] = {
    "list_dir": ListDir,
    "read_file": ReadFile,
    "write_file": WriteFile,
    "append_file": AppendFile,
    "make_dir": MakeDir,
    "move_path": MovePath,
    "copy_path": CopyPath,
    "archive_path": ArchivePath,
    "search_files": SearchFiles,
    "file_info": FileInfo,
    "set_mode": SetMode,
    "delete_path": DeletePath,
    "submit": Submit,
}


def tool_specs() -> list[dict[str, Any]]:
    """Name, description and JSON-schema parameters of every tool (OpenAI function style)."""
    specs = []
    for name, model in TOOLS.items():
        schema = model.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        specs.append(
            {"name": name, "description": (model.__doc__ or "").strip(), "parameters": schema}
        )
    return specs


def action_schema() -> dict[str, Any]:
    """One tool call, `{"tool": <name>, "args": {...}}`, as a JSON schema for constrained
    decoding: one alternative per tool, each with its arguments' schema (no other keys), every
    argument required (defaults written out, as the scripted policies write them: with
    optional keys left, lm-format-enforcer can let a trailing comma through), paths and search
    patterns not empty (FileTool refuses either) and set_mode's mode pattern."""
    alternatives = []
    for spec in tool_specs():
        args = {**spec["parameters"], "properties": {**spec["parameters"]["properties"]}}
        args["required"] = list(args["properties"])
        for name in ("path", "src", "dst", "pattern"):  # empty, each is an error
            if name in args["properties"]:
                args["properties"][name] = {**args["properties"][name], "minLength": 1}
        if spec["name"] == "set_mode":
            args["properties"]["mode"] = {**args["properties"]["mode"], "pattern": _MODE.pattern}
        alternatives.append(
            {
                "type": "object",
                "properties": {"tool": {"const": spec["name"]}, "args": args},
                "required": ["tool", "args"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": alternatives}


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text`: bare, in a ``` fence, or embedded in prose."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        stripped = candidate.strip()
        try:
            value = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
        for attempt, start in enumerate(m.start() for m in re.finditer(r"\{", candidate)):
            if attempt >= 64:
                break
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(value, dict):
                return value
    raise ActionError('no JSON object found; reply with {"tool": "<name>", "args": {...}}')


def normalize_path(path: str, *, allow_root: bool = False) -> str:
    """A workspace-relative path in normal form (`/workspace/x` -> `x`), or ActionError."""
    if not path:
        raise ActionError("the path is empty")
    if path.startswith("/"):
        if path != WORKSPACE and not path.startswith(WORKSPACE + "/"):
            raise ActionError(f"absolute paths must lie under {WORKSPACE}: {path!r}")
        path = path[len(WORKSPACE) :].lstrip("/") or "."
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        raise ActionError(f"the path leaves the project directory: {path!r}")
    if normal == "." and not allow_root:
        raise ActionError("the path names the project directory itself")
    return normal


def _format_validation(tool: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "args"
        problems.append(f"{where}: {err['msg']}")
    return f"bad arguments for {tool}: " + "; ".join(problems)


class FileToolEnv(AgentEnv):
    """File tools as JSON calls. See the module docstring for the action format."""

    env_id: ClassVar[str] = "agentbench/FileTool-v0"

    @property
    def tool_specs(self) -> list[dict[str, Any]]:
        return tool_specs()

    @classmethod
    def action_schema(cls) -> dict[str, Any] | None:
        return action_schema()

    @property
    def system_prompt(self) -> str:
        lines = [
            "You work in a project directory using file tools. Each reply must contain exactly",
            'one tool call as a JSON object: {"tool": "<name>", "args": {...}}.',
            f"Paths are relative to the project root ({WORKSPACE}).",
            "",
            "Tools:",
        ]
        for spec in tool_specs():
            props = spec["parameters"].get("properties", {})
            required = set(spec["parameters"].get("required", []))
            args = ", ".join(
                f"{name}: {prop.get('type', 'string')}"
                + ("" if name in required else f" = {json.dumps(prop.get('default'))}")
                for name, prop in props.items()
            )
            lines.append(f"- {spec['name']}({args}): {spec['description']}")
        lines += ["", "When the task is done, call submit with your answer."]
        return "\n".join(lines)

    def parse_action(self, text: str) -> ParsedAction:
        obj = extract_json_object(text)
        tool = obj.get("tool")
        if not isinstance(tool, str):
            raise ActionError('the JSON object needs a "tool" field naming a tool')
        if tool not in TOOLS:
            raise ActionError(f"unknown tool {tool!r}; the tools are listed in the system prompt")
        args = obj.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ActionError('"args" must be a JSON object')
        extra_keys = set(obj) - {"tool", "args"}
        if extra_keys:
            raise ActionError(f"unexpected fields beside tool and args: {sorted(extra_keys)}")
        try:
            call = TOOLS[tool].model_validate(args)
        except ValidationError as exc:
            raise ActionError(_format_validation(tool, exc)) from None
        call = self._normalize_call(tool, call)
        parsed = {"tool": tool, "args": call.model_dump()}
        if isinstance(call, Submit):
            return ParsedAction(payload=call, parsed=parsed, submit=True, answer=call.answer)
        return ParsedAction(payload=call, parsed=parsed)

    @staticmethod
    def _normalize_call(tool: str, call: _Args) -> _Args:
        updates: dict[str, Any] = {}
        for name in ("path", "src", "dst", "archive"):
            value = getattr(call, name, None)
            if isinstance(value, str):
                if "\0" in value:
                    raise ActionError(f"{name} contains a NUL byte")
                root_ok = tool in ("list_dir", "search_files", "file_info") and name == "path"
                root_ok = root_ok or (tool in ("move_path", "copy_path") and name == "dst")
                updates[name] = normalize_path(value, allow_root=root_ok)
        if isinstance(call, SetMode) and not _MODE.match(call.mode):
            raise ActionError(f"mode must be an octal string like '640', got {call.mode!r}")
        if isinstance(call, SearchFiles) and not call.pattern:
            raise ActionError("the search pattern is empty")
        return call.model_copy(update=updates) if updates else call

    def classify(self, action: ParsedAction, before: Snapshot) -> Intent:
        return classify_tool_call(action.parsed["tool"])

    def execute(self, action: ParsedAction, sandbox: Sandbox) -> StepOutcome:
        call = action.payload
        tool = action.parsed["tool"]
        try:
            text = self._run_tool(call, sandbox)
        except SandboxFileError as exc:
            message = str(exc) or "the operation failed"
            subject = getattr(call, "path", None) or getattr(call, "src", None)
            if subject and subject not in message:
                message = f"{subject}: {message}"
            return StepOutcome(f"error: {message}", error=message, extra={"tool": tool})
        return StepOutcome(text, extra={"tool": tool})

    def default_task(self, seed: int | None) -> TaskInstance:
        from agentbench.envs.sample import filetool_sample_task

        return filetool_sample_task(seed)

    # -- the tools ---------------------------------------------------------------------------
    def _run_tool(self, call: _Args, sandbox: Sandbox) -> str:
        q = shlex.quote
        if isinstance(call, ListDir):
            entries = sandbox.list_dir(call.path)
            if not entries:
                return f"{call.path}: (empty directory)"
            rows = [
                f"{e.kind:<7} {e.size:>9}  {e.name}{'/' if e.kind == 'dir' else ''}"
                for e in entries
            ]
            return "\n".join(rows)
        if isinstance(call, ReadFile):
            data = sandbox.read_file(call.path)
            if not data:
                return f"{call.path}: (empty file)"
            if b"\0" in data:
                return f"{call.path}: binary file, {len(data)} bytes"
            return data.decode("utf-8", errors="replace")
        if isinstance(call, WriteFile | AppendFile):
            data = call.content.encode("utf-8")
            sandbox.write_file(call.path, data, append=isinstance(call, AppendFile))
            verb = "appended" if isinstance(call, AppendFile) else "wrote"
            return f"{verb} {len(data)} bytes to {call.path}"
        if isinstance(call, MakeDir):
            _shell(sandbox, f"mkdir -p -- {q(call.path)}")
            return f"created directory {call.path}"
        if isinstance(call, MovePath):
            _shell(sandbox, f"mv -- {q(call.src)} {q(call.dst)}")
            return f"moved {call.src} to {call.dst}"
        if isinstance(call, CopyPath):
            _shell(sandbox, f"cp -R --preserve=mode,timestamps -- {q(call.src)} {q(call.dst)}")
            return f"copied {call.src} to {call.dst}"
        if isinstance(call, ArchivePath):
            return self._archive(call, sandbox)
        if isinstance(call, SearchFiles):
            return self._search(call, sandbox)
        if isinstance(call, FileInfo):
            out = _shell(sandbox, f"stat -c '%F|%s|%a|%U|%G|%y' -- {q(call.path)}")
            kind, size, mode, owner, group, mtime = out.strip().split("|", 5)
            return (
                f"path: {call.path}\nkind: {kind}\nsize: {size}\nmode: {mode}\n"
                f"owner: {owner}\ngroup: {group}\nmodified: {mtime}"
            )
        if isinstance(call, SetMode):
            _shell(sandbox, f"chmod {call.mode} -- {q(call.path)}")
            return f"mode of {call.path} set to {call.mode}"
        if isinstance(call, DeletePath):
            p = q(call.path)
            if call.recursive:
                script = f"if [ ! -e {p} ] && [ ! -L {p} ]; then "
                script += f"echo 'no such file or directory' >&2; exit 2; fi; rm -rf -- {p}"
            else:
                script = f"if [ -d {p} ] && [ ! -L {p} ]; then rmdir -- {p}; else rm -- {p}; fi"
            _shell(sandbox, script)
            return f"deleted {call.path}"
        raise ActionError(f"tool {type(call).__name__} is not implemented")  # pragma: no cover

    @staticmethod
    def _archive(call: ArchivePath, sandbox: Sandbox) -> str:
        q = shlex.quote
        archive = call.archive or f"{call.path}.tar.gz"
        if archive == call.path or archive.startswith(call.path + "/"):
            raise SandboxFileError("the archive cannot be inside what it packs")
        parent, name = posixpath.split(call.path)
        script = (
            f"if [ ! -e {q(call.path)} ]; then echo 'no such file or directory' >&2; exit 2; fi; "
            f"if [ -e {q(archive)} ]; then echo 'the archive already exists' >&2; exit 17; fi; "
            f"tar -czf {q(archive)} -C {q(parent or '.')} -- {q(name)} "
            f"&& rm -rf -- {q(call.path)}"
        )
        _shell(sandbox, script)
        return f"packed {call.path} into {archive} (the original is now only in the archive)"

    @staticmethod
    def _search(call: SearchFiles, sandbox: Sandbox) -> str:
        q = shlex.quote
        mode = "-E" if call.regex else "-F"
        result = sandbox.exec(
            f"( cd -- {q(sandbox.workspace_path)} && "
            f"grep -rnI {mode} -e {q(call.pattern)} -- {q(call.path)} | head -n "
            f"{SEARCH_MAX_LINES + 1}; rc=${{PIPESTATUS[0]}}; "
            # grep killed by SIGPIPE once head has its lines: that is a success
            f"[ $rc -eq 141 ] && rc=0; exit $rc )"
        )
        if result.timed_out:
            raise SandboxFileError("the search timed out")
        if result.exit_code == 1:
            return "no matches"
        if result.exit_code != 0:
            lines = result.stderr.strip().splitlines()
            raise SandboxFileError(lines[-1] if lines else f"search failed ({result.exit_code})")
        lines = [ln.removeprefix("./") for ln in result.stdout.splitlines()]
        if len(lines) > SEARCH_MAX_LINES:
            lines = [*lines[:SEARCH_MAX_LINES], f"[... more than {SEARCH_MAX_LINES} matches]"]
        return "\n".join(lines)


def _shell(sandbox: Sandbox, script: str) -> str:
    """Run a tool's script from the workspace root in a subshell; SandboxFileError on failure."""
    workspace = shlex.quote(sandbox.workspace_path)
    result = sandbox.exec(f"( cd -- {workspace} && {{ {script}; }} )")
    if result.timed_out:
        raise SandboxFileError("the operation timed out")
    if result.exit_code != 0:
        lines = result.stderr.strip().splitlines()
        raise SandboxFileError(lines[-1] if lines else f"failed ({result.exit_code})")
    return result.stdout
